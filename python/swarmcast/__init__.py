"""swarmcast: a Socket.IO server written in Rust, driven from Python.

    import swarmcast

    server = swarmcast.Server(port=5000, cors_allowed_origins="*")

    @server.on("connect")
    def connect(sid, auth):
        if not auth or auth.get("token") != "secret":
            raise swarmcast.ConnectionRefusedError("unauthorized", {"retry": False})

    @server.on("chat")
    def chat(sid, message):
        server.emit("chat", message, skip_sid=sid)
        return "ok"  # answers the client's ack

    with server:  # start() ... stop()
        server.emit("tick", {"seq": 1})  # from any thread, never blocks

Handlers run on swarmcast's own threads (one socket's events in order); `emit` and
every call that does Rust work release the GIL. `swarmcast.AsyncServer` is the same
server driven from asyncio (`async def` handlers, `await sio.emit(...)`). See
docs/python.md.
"""

from __future__ import annotations

import atexit

from ._async_server import AsyncServer
from ._native import (
    ConnectionRefusedError,
    DisconnectedError,
    EmitError,
    NotRunningError,
    QueueFullError,
    RedisEmitter,
    Server,
    ServerStartError,
    StateMap,
    SwarmcastError,
    __version__,
    _stop_all,
)

__all__ = [
    "AsyncServer",
    "ConnectionRefusedError",
    "DisconnectedError",
    "EmitError",
    "NotRunningError",
    "QueueFullError",
    "RedisEmitter",
    "Server",
    "ServerStartError",
    "StateMap",
    "SwarmcastError",
    "__version__",
]

# Stop running servers while the interpreter is still whole: their disconnect handlers
# and handler threads need it.
atexit.register(_stop_all)
