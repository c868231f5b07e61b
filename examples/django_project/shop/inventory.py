"""The shop's items: a fixed list, so the example needs no database."""

from __future__ import annotations

ITEMS: dict[int, dict[str, object]] = {
    1: {"id": 1, "name": "teapot", "price": 18.5},
    2: {"id": 2, "name": "kettle", "price": 42.0},
    3: {"id": 3, "name": "mug", "price": 6.0},
}
