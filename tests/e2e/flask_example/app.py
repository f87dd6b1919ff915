"""A Flask-SocketIO style example app (written for the browser test, after the shape of
Flask-SocketIO's own example): the page and Socket.IO on one port, served by swarmcast.
Buttons: echo, broadcast, join / leave / close a room, send to a room, disconnect.

    python tests/e2e/flask_example/app.py PORT
"""

import os
import sys

from flask import Flask, render_template_string, send_file, session
from swarmcast.flask import SocketIO, close_room, disconnect, emit, join_room, leave_room, rooms

ROOT = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(ROOT, "..", "..", "js", "node_modules", "socket.io-client", "dist", "socket.io.min.js")

app = Flask(__name__)
app.config["SECRET_KEY"] = "test-only"
socketio = SocketIO(app)

PAGE = """<!doctype html>
<title>swarmcast flask example</title>
<script src="/socket.io.min.js"></script>
<p>Async mode: <b id="mode">{{ async_mode }}</b></p>
<form id="echo"><input id="echo_data" value="hello"><button id="echo_btn">Echo</button></form>
<form id="broadcast"><input id="broadcast_data" value="to all"><button id="broadcast_btn">Broadcast</button></form>
<form id="join"><input id="join_room" value="r1"><button id="join_btn">Join Room</button></form>
<form id="leave"><input id="leave_room" value="r1"><button id="leave_btn">Leave Room</button></form>
<form id="send_room"><input id="room_name" value="r1"><input id="room_data" value="to the room"><button id="room_btn">Send to Room</button></form>
<form id="close"><input id="close_room" value="r1"><button id="close_btn">Close Room</button></form>
<form id="disconnect"><button id="disconnect_btn">Disconnect</button></form>
<div id="log"></div>
<script>
  const log = (text) => {
    const line = document.createElement("div");
    line.textContent = text;
    document.getElementById("log").appendChild(line);
  };
  const socket = io();  // this page's own origin: no URL, no CORS
  window.socket = socket;
  socket.on("connect", () => socket.emit("my_event", {data: "I'm connected!"}));
  socket.on("my_response", (msg, ack) => {
    log("Received #" + msg.count + ": " + msg.data);
    if (ack) ack();
  });
  socket.on("disconnect", () => log("Disconnected"));
  const on = (id, f) => document.getElementById(id).addEventListener("submit", (e) => { e.preventDefault(); f(); });
  const val = (id) => document.getElementById(id).value;
  on("echo", () => socket.emit("my_event", {data: val("echo_data")}));
  on("broadcast", () => socket.emit("my_broadcast_event", {data: val("broadcast_data")}));
  on("join", () => socket.emit("join", {room: val("join_room")}));
  on("leave", () => socket.emit("leave", {room: val("leave_room")}));
  on("send_room", () => socket.emit("my_room_event", {room: val("room_name"), data: val("room_data")}));
  on("close", () => socket.emit("close_room", {room: val("close_room")}));
  on("disconnect", () => socket.emit("disconnect_request"));
</script>
"""


@app.route("/")
def index():
    return render_template_string(PAGE, async_mode=socketio.async_mode)


@app.route("/favicon.ico")
def favicon():
    return "", 204


@app.route("/socket.io.min.js")
def client_js():
    return send_file(CLIENT, mimetype="application/javascript")


def count() -> int:
    session["count"] = session.get("count", 0) + 1
    return session["count"]


@socketio.event
def my_event(message):
    emit("my_response", {"data": message["data"], "count": count()})


@socketio.event
def my_broadcast_event(message):
    emit("my_response", {"data": message["data"], "count": count()}, broadcast=True)


@socketio.event
def join(message):
    join_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(sorted(rooms())), "count": count()})


@socketio.event
def leave(message):
    leave_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(sorted(rooms())), "count": count()})


@socketio.on("close_room")
def on_close_room(message):
    emit(
        "my_response",
        {"data": "Room " + message["room"] + " is closing.", "count": count()},
        to=message["room"],
    )
    close_room(message["room"])


@socketio.event
def my_room_event(message):
    emit("my_response", {"data": message["data"], "count": count()}, to=message["room"])


@socketio.event
def disconnect_request():
    # Queued in order: the client gets the message, then the DISCONNECT.
    emit("my_response", {"data": "Disconnected!", "count": count()})
    disconnect()


if __name__ == "__main__":
    socketio.run(app, host="127.0.0.1", port=int(sys.argv[1]), use_reloader=False)
