"""The rule that every test under ``tests/e2e/`` carries the ``e2e`` marker is enforced."""

from __future__ import annotations

import pytest

MARKERS = '[pytest]\nmarkers =\n    e2e: starts real servers\n'


def test_an_unmarked_test_under_e2e_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeini(MARKERS)
    pytester.mkpydir("e2e")
    pytester.path.joinpath("e2e", "test_server.py").write_text(
        "def test_starts_a_server():\n    pass\n")
    result = pytester.runpytest("-p", "tests.e2e_marker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*must carry the e2e marker*e2e/test_server.py::test_starts_a_server*"])


def test_a_marked_test_under_e2e_runs(pytester: pytest.Pytester) -> None:
    # The positive control: the same test with the marker runs and passes.
    pytester.makeini(MARKERS)
    pytester.mkpydir("e2e")
    pytester.path.joinpath("e2e", "test_server.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.e2e\n\n"
        "def test_starts_a_server():\n    pass\n")
    result = pytester.runpytest("-p", "tests.e2e_marker")
    result.assert_outcomes(passed=1)


def test_the_suite_marks_every_e2e_test(request: pytest.FixtureRequest) -> None:
    # The hook runs on this very session: had any test under tests/e2e/ lacked the marker,
    # collection would have stopped; this checks the plugin is the one that ran.
    assert request.config.pluginmanager.has_plugin("tests.e2e_marker")
