"""An MCP stdio transport that starts the backend as a child process the proxy can watch.

The SDK's ``stdio_client`` keeps its process to itself; a proxy that reports its child
processes starts the child here and hands it to ``BackendMonitor.watch_process``, which counts
the start now and the exit (clean, nonzero or by signal) when it happens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import mcp_types as types
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage

from asgi_mcp_metrics import BackendMonitor

#: How long a child gets to exit after its stdin is closed before it is terminated.
EXIT_GRACE_SECONDS = 5.0


@asynccontextmanager
async def child_process(argv: Sequence[str], monitor: BackendMonitor,
                        ) -> AsyncIterator[TransportStreams]:
    process = await anyio.open_process(list(argv), stderr=None)  # stderr: inherited
    # Counts the start, and the exit whenever it happens (a crash while connected included).
    monitor.watch_process(process)
    to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](0)
    assert process.stdin is not None and process.stdout is not None

    async def read_stdout() -> None:
        buffer = b""
        async with to_session:
            async for chunk in process.stdout:  # type: ignore[union-attr]
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(line,
                                                                              by_name=False)
                    except ValueError as exc:
                        await to_session.send(exc)
                    else:
                        await to_session.send(SessionMessage(message))

    async def write_stdin() -> None:
        async with from_session:
            async for session_message in from_session:
                data = session_message.message.model_dump_json(by_alias=True,
                                                               exclude_unset=True)
                await process.stdin.send(data.encode() + b"\n")  # type: ignore[union-attr]

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read_stdout)
        tasks.start_soon(write_stdin)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                # Closing stdin asks an MCP stdio server to exit (the spec's shutdown).
                await process.stdin.aclose()
                with anyio.move_on_after(EXIT_GRACE_SECONDS) as grace:
                    await process.wait()
                if grace.cancelled_caught:
                    process.terminate()
                    await process.wait()
            # Report the exit now rather than when the watcher's task next runs, which may be
            # after the event loop has stopped (at shutdown); the monitor counts a pid once.
            monitor.process_exited(process.returncode, pid=process.pid)
            tasks.cancel_scope.cancel()
