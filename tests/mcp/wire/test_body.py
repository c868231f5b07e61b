from __future__ import annotations

import pytest

from asgi_mcp_metrics.mcp.wire.body import BoundedBuffer, CappedBody


def test_collects_chunks_in_order() -> None:
    buffer = BoundedBuffer(100)
    for chunk in (b'{"jsonrpc":', b'"2.0",', b'"method":"ping"}'):
        buffer.feed(chunk)
    assert buffer.getvalue() == b'{"jsonrpc":"2.0","method":"ping"}'
    assert buffer.size == 33
    assert buffer.overflowed is False


def test_exactly_at_the_cap_is_kept() -> None:
    buffer = BoundedBuffer(10)
    buffer.feed(b"12345")
    buffer.feed(b"67890")
    assert buffer.getvalue() == b"1234567890"
    assert buffer.overflowed is False


def test_one_byte_over_the_cap_drops_everything() -> None:
    buffer = BoundedBuffer(10)
    buffer.feed(b"12345")
    buffer.feed(b"678901")
    assert buffer.overflowed is True
    assert buffer.size == 0
    assert buffer.getvalue() == b""
    buffer.feed(b"x")
    assert buffer.overflowed is True
    assert buffer.getvalue() == b""


def test_single_oversized_chunk() -> None:
    buffer = BoundedBuffer(4)
    buffer.feed(b"12345")
    assert (buffer.overflowed, buffer.size, buffer.getvalue()) == (True, 0, b"")


def test_empty_chunks_are_ignored() -> None:
    buffer = BoundedBuffer(1)
    buffer.feed(b"")
    assert (buffer.size, buffer.getvalue(), buffer.overflowed) == (0, b"", False)
    buffer.feed(b"a")
    buffer.feed(b"")
    assert (buffer.getvalue(), buffer.overflowed) == (b"a", False)


def test_mutable_chunks_are_copied() -> None:
    buffer = BoundedBuffer(10)
    chunk = bytearray(b"abc")
    buffer.feed(chunk)  # type: ignore[arg-type]  # a careless caller
    chunk[:] = b"xyz"
    assert buffer.getvalue() == b"abc"


def test_getvalue_is_repeatable_and_feed_continues_after_it() -> None:
    buffer = BoundedBuffer(10)
    buffer.feed(b"ab")
    buffer.feed(b"cd")
    assert buffer.getvalue() == b"abcd"
    assert buffer.getvalue() == b"abcd"
    buffer.feed(b"ef")
    assert buffer.getvalue() == b"abcdef"
    assert buffer.size == 6


def test_clear_allows_reuse() -> None:
    buffer = BoundedBuffer(3)
    buffer.feed(b"abcd")
    assert buffer.overflowed is True
    buffer.clear()
    buffer.feed(b"abc")
    assert (buffer.overflowed, buffer.getvalue()) == (False, b"abc")


@pytest.mark.parametrize("cap", [0, -1])
def test_cap_must_be_positive(cap: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BoundedBuffer(cap)


def test_repr_shows_state_not_content() -> None:
    buffer = BoundedBuffer(8)
    buffer.feed(b"secret")
    assert repr(buffer) == "BoundedBuffer(size=6, max_bytes=8, overflowed=False)"


def test_take_hands_back_the_whole_body_once_it_is_complete() -> None:
    one = BoundedBuffer(10)
    chunk = b"0123456789"
    assert one.take(chunk, False) is chunk  # one message: no copy
    many = BoundedBuffer(10)
    assert many.take(b"0123", True) is None
    assert many.take(bytearray(b"456"), True) is None
    assert many.take(b"789", False) == b"0123456789"
    assert not many.overflowed


def test_take_past_the_cap_gives_nothing_and_says_so() -> None:
    single = BoundedBuffer(4)
    assert single.take(b"12345", False) == b""
    assert single.overflowed
    split = BoundedBuffer(4)
    assert split.take(b"123", True) is None
    assert split.take(b"45", False) == b""
    assert split.overflowed
    copied = BoundedBuffer(4)
    assert copied.take(memoryview(b"abc"), False) == b"abc"


class _Body(CappedBody):
    __slots__ = ()

    def __init__(self, cap: int) -> None:
        self.body_cap = cap
        self.body = None


@pytest.mark.parametrize(
    ("cap", "messages", "expected"),
    [
        (5, [b"12345"], (b"12345", False)),
        (5, [b"123456"], (b"", True)),
        (5, [b"12", b"345"], (b"12345", False)),
        (5, [b"12", b"3", b"", b"456"], (b"", True)),
        (5, [b"", b""], (b"", False)),
    ],
)
def test_a_capped_body_is_whole_once_its_last_message_comes(
        cap: int, messages: list[bytes], expected: tuple[bytes, bool]) -> None:
    reader = _Body(cap)
    for chunk in messages[:-1]:
        assert reader.take_body(chunk, True) is None
        assert reader.body_cap == cap
    # A bytearray the server may reuse is copied.
    last = bytearray(messages[-1])
    whole = reader.take_body(last, False)
    last[:] = b"x" * len(last)
    assert whole == expected
    assert type(whole[0]) is bytes
    assert (reader.body_cap, reader.body) == (0, None)


def test_a_body_left_unread_drops_its_buffer() -> None:
    reader = _Body(10)
    assert reader.take_body(b"123", True) is None
    assert reader.body is not None
    reader.stop_reading()
    assert (reader.body_cap, reader.body) == (0, None)
