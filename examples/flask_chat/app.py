"""A small Flask-SocketIO chat: rooms, acks, a per-client session, a background task,
binary messages, error handlers and a server-side kick.

    python examples/flask_chat/app.py            # Flask-SocketIO
    python examples/flask_chat/app_swarmcast.py  # the same app on swarmcast

The two files differ only in the import line below (tests/python/test_flask_chat.py
checks that, then drives both with the same client test). PORT (default 5000) is where
Socket.IO clients connect.
"""

import os
from typing import Any

from flask import Flask, render_template_string, request, session
from flask_socketio import (
    ConnectionRefusedError,
    SocketIO,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)

app = Flask(__name__)
app.config["SECRET_KEY"] = "not-a-secret"
socketio = SocketIO(app, cors_allowed_origins="*")

PAGE = """<!doctype html>
<title>chat</title>
<script src="/static/socket.io.min.js"></script>
<ul id="log"></ul>
<script>
  // SOCKET_URL: where Socket.IO is when it is not this page's own origin (empty: here).
  const socket = io({{ socket_url|tojson }} || undefined, {auth: {name: "browser"}});
  socket.on("chat", (m) => {
    const li = document.createElement("li");
    li.textContent = m.name + ": " + m.text;
    document.getElementById("log").appendChild(li);
  });
  socket.emit("join", {room: "lobby"});
</script>
"""

ticker_started = False


def request_sid() -> str:
    """The sid of the client whose event is handled (Socket.IO sets ``request.sid``)."""
    sid: str = getattr(request, "sid")
    return sid


@app.route("/")
def index() -> str:
    return render_template_string(PAGE, socket_url=os.environ.get("SOCKET_URL", ""))


def ticker() -> None:
    # Bounded: at most 10 minutes of ticks.
    for n in range(6000):
        socketio.emit("tick", {"n": n}, to="ticks")
        socketio.sleep(0.1)


@socketio.on("connect")
def on_connect(auth: dict[str, Any] | None) -> None:
    global ticker_started
    if not auth or not auth.get("name"):
        raise ConnectionRefusedError("name required", {"hint": "connect with auth={'name': ...}"})
    session["name"] = auth["name"]
    if not ticker_started:
        ticker_started = True
        socketio.start_background_task(ticker)
    emit("welcome", {"sid": request_sid(), "name": auth["name"]})


@socketio.on("join")
def on_join(data: dict[str, str]) -> list[str]:
    join_room(data["room"])
    emit("status", {"msg": session["name"] + " joined " + data["room"]}, to=data["room"])
    return sorted(r for r in rooms() if r != request_sid())


@socketio.on("leave")
def on_leave(data: dict[str, str]) -> list[str]:
    leave_room(data["room"])
    return sorted(r for r in rooms() if r != request_sid())


@socketio.on("chat")
def on_chat(data: dict[str, str]) -> dict[str, bool]:
    message = {"name": session["name"], "text": data["text"]}
    emit("chat", message, to=data["room"], include_self=False)
    return {"delivered": True}


@socketio.on("shout")
def on_shout(text: str) -> None:
    send(session["name"] + ": " + text, broadcast=True)


@socketio.event
def whoami() -> dict[str, str]:
    return {"sid": request_sid(), "name": session["name"], "namespace": getattr(request, "namespace")}


@socketio.on("avatar")
def on_avatar(blob: bytes) -> int:
    emit("avatar", {"name": session["name"], "image": blob[::-1]})
    return len(blob)


@socketio.on("ticks")
def on_ticks() -> str:
    join_room("ticks")
    return "subscribed"


@socketio.on("boom")
def on_boom() -> None:
    raise ValueError("boom")


@socketio.on_error_default
def on_error(e: Exception) -> dict[str, str]:
    return {"error": str(e)}


@socketio.on("kick_me")
def on_kick_me() -> None:
    disconnect()


@socketio.on("disconnect")
def on_disconnect(reason: str) -> None:
    emit("left", {"name": session.get("name")}, broadcast=True, include_self=False)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    print(f"chat: http://127.0.0.1:{port}", flush=True)
    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True)
