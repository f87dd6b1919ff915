"""FastAPI and swarmcast on one asyncio event loop: an async route pushes events to
Socket.IO clients.

    SIO_PORT=5000 python examples/asgi/fastapi_app.py --port 8000
    # or, from examples/asgi: SIO_PORT=5000 uvicorn fastapi_app:app --port 8000

    curl -X POST localhost:8000/notify -H 'content-type: application/json' \\
         -d '{"message": "deploy finished", "room": "ops"}'

uvicorn serves the FastAPI app; the app's lifespan starts ``swarmcast.AsyncServer`` on
the same running event loop (``async with sio``), so route handlers ``await
sio.emit(...)`` directly and the Socket.IO handlers below are coroutines on that loop.

swarmcast serves Socket.IO on a port of its own (``SIO_PORT``, its Rust server):
it is not an ASGI app and is not mounted in FastAPI's routes. Browsers connect to
``http://host:SIO_PORT`` (``cors_allowed_origins`` lets pages served by FastAPI in).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import swarmcast

SIO_PORT = int(os.environ.get("SIO_PORT", "5000"))

sio = swarmcast.AsyncServer(host="127.0.0.1", port=SIO_PORT, cors_allowed_origins="*")


@sio.event
async def connect(sid: str, auth: dict[str, Any] | None) -> None:
    name = (auth or {}).get("name")
    if name is not None and not isinstance(name, str):
        raise swarmcast.ConnectionRefusedError("name must be a string")
    await sio.emit("welcome", {"sid": sid, "name": name}, to=sid)


@sio.on("join")
async def join(sid: str, room: str) -> list[str]:
    """Join a room; the ack is the socket's rooms."""
    await sio.enter_room(sid, room)
    return sio.rooms(sid)


@sio.event
async def disconnect(sid: str, reason: str) -> None:
    print(f"{sid} left: {reason}", flush=True)


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with sio:  # starts on uvicorn's running loop, stops at shutdown
        print(f"Socket.IO on {sio.url}", flush=True)
        yield


app = FastAPI(lifespan=lifespan)


class Notice(BaseModel):
    message: str
    room: str | None = None


@app.get("/")
async def index() -> dict[str, Any]:
    """Where Socket.IO is, and proof that both share this loop."""
    return {
        "socketio": sio.url,
        "same_loop": sio.loop is asyncio.get_running_loop(),
        "clients": len(sio.server.sids()),
    }


@app.post("/notify")
async def notify(notice: Notice) -> dict[str, int | None]:
    """Push a notification to every client, or to one room; says to how many clients
    (None if the server hands its emits to a background thread: emit_in_background)."""
    if not sio.running:
        raise HTTPException(status_code=503, detail="Socket.IO is not running")
    delivered = await sio.emit("notification", {"message": notice.message}, to=notice.room)
    return {"delivered": delivered}


@app.post("/ask/{sid}")
async def ask(sid: str, notice: Notice) -> dict[str, Any]:
    """Ask one client and wait (without blocking the loop) for its answer."""
    try:
        answer = await sio.call("question", notice.message, to=sid, timeout=5)
    except swarmcast.DisconnectedError:
        raise HTTPException(status_code=404, detail=f"no client {sid}") from None
    except TimeoutError:
        raise HTTPException(status_code=504, detail="no answer within 5 s") from None
    return {"answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description="FastAPI + swarmcast.AsyncServer")
    parser.add_argument("--host", default="127.0.0.1", help="FastAPI's address")
    parser.add_argument("--port", type=int, default=8000, help="FastAPI's port")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
