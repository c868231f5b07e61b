"""A byte buffer with a hard cap, for teeing bodies we may want to parse.

The middleware copies request-body chunks here as the application reads them, and
collects JSON response bodies the same way. Parsing is best effort: once a body is
larger than we are willing to hold, we give up on it (and say so through
``overflowed``) instead of growing without bound.
"""

from __future__ import annotations

from typing import Final


class BoundedBuffer:
    """Collects chunks up to ``max_bytes``; past that it keeps only the fact it overflowed."""

    __slots__ = ("_chunks", "_max_bytes", "_size", "overflowed")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self._max_bytes = max_bytes
        # A list of chunks rather than a bytearray: the common case is one chunk,
        # and getvalue() can then hand that very object back without a copy.
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def size(self) -> int:
        """Bytes currently held (0 after an overflow)."""
        return self._size

    def feed(self, chunk: bytes) -> None:
        if self.overflowed or not chunk:
            return
        size = self._size + len(chunk)
        if size > self._max_bytes:
            # Drop what we had: a truncated JSON document is useless to the parser,
            # and releasing it early keeps the worst case at max_bytes per request.
            self.overflowed = True
            self._chunks = []
            self._size = 0
            return
        if type(chunk) is not bytes:
            # A caller may reuse a bytearray/memoryview after handing it to us.
            chunk = bytes(chunk)
        self._chunks.append(chunk)
        self._size = size

    def take(self, chunk: bytes, more_body: bool) -> bytes | None:
        """Feed ``chunk``; the whole body once it is complete (``b""`` after an overflow),
        ``None`` while more is to come."""
        if not more_body and not self._chunks and not self.overflowed:
            # The common case, a body in one message: no copy, no join.
            if len(chunk) > self._max_bytes:
                self.overflowed = True
                return b""
            return chunk if type(chunk) is bytes else bytes(chunk)
        self.feed(chunk)
        return None if more_body else self.getvalue()

    def getvalue(self) -> bytes:
        """Everything fed so far, or ``b""`` once the buffer has overflowed."""
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        joined = b"".join(chunks)
        if len(chunks) > 1:
            # Keep the joined form so repeated calls do not join again.
            self._chunks = [joined]
        return joined

    def clear(self) -> None:
        """Forget the content and the overflow flag, so the buffer can be reused."""
        self._chunks = []
        self._size = 0
        self.overflowed = False

    def __repr__(self) -> str:
        return (
            f"BoundedBuffer(size={self._size}, max_bytes={self._max_bytes}, "
            f"overflowed={self.overflowed})"
        )


class CappedBody:
    """A body read as it comes, up to ``body_cap`` bytes (0: not read, or read to the end);
    ``body`` is its buffer once it comes in more than one message.  The subclass sets both."""

    __slots__ = ("body", "body_cap")

    body_cap: int
    body: BoundedBuffer | None

    def take_body(self, chunk: bytes, more_body: bool) -> tuple[bytes, bool] | None:
        """Feed one message's ``chunk``: once the body is complete, the body and whether it
        went past the cap (then it is ``b""``); None while more is to come."""
        buffer = self.body
        if buffer is None and not more_body:
            # The whole body in one message, the common case: no buffer, no copy.
            data = chunk if type(chunk) is bytes else bytes(chunk)
            whole = (data, False) if len(data) <= self.body_cap else TOO_LARGE
        else:
            if buffer is None:
                buffer = self.body = BoundedBuffer(self.body_cap)
            taken = buffer.take(chunk, more_body)
            if taken is None:
                return None
            self.body = None
            whole = TOO_LARGE if buffer.overflowed else (taken, False)
        self.body_cap = 0
        return whole

    def stop_reading(self) -> None:
        """Whatever of the body is still to come is not read."""
        self.body_cap = 0
        self.body = None


#: What :meth:`CappedBody.take_body` gives for a body past its cap.
TOO_LARGE: Final[tuple[bytes, bool]] = (b"", True)
