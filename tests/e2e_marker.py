"""Every test under ``tests/e2e/`` starts a real server: it must carry the ``e2e`` marker.

A pytest plugin (loaded by ``tests/conftest.py``): collecting a test there without the marker
is a usage error that names it, so ``-m "not e2e"`` can never run a server by accident.
"""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_DIR = "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if E2E_DIR in Path(str(item.path)).parent.parts
                and item.get_closest_marker("e2e") is None]
    if unmarked:
        raise pytest.UsageError(
            "tests under tests/e2e/ start servers and must carry the e2e marker "
            "(pytestmark = pytest.mark.e2e): " + ", ".join(unmarked))
