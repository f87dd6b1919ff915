"""swarmcast.flask in-process: the parts of the Flask-SocketIO API the example app does
not exercise (class-based namespaces, catch-all, per-namespace error handlers,
callbacks, call from a handler, options)."""

from __future__ import annotations

import flask
import pytest
from flask import request, session

from conftest import WAIT, Inbox, Recorder, make_client, wait_for
import swarmcast
from swarmcast.flask import Namespace, SocketIO, call, emit, rooms


@pytest.fixture
def app_and_socketio():
    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    socketio = SocketIO(app, async_mode="threading", logger=True, max_http_buffer_size=1 << 20)
    yield app, socketio
    socketio.stop()


def test_flask_facade(app_and_socketio, clients, transport):
    app, socketio = app_and_socketio
    seen = Recorder()

    class Chat(Namespace):
        def on_connect(self, auth):
            session["who"] = auth["who"]
            seen("ns-connect", request.sid, request.namespace)

        def on_hello(self, data):
            return {"hello": data, "who": session["who"]}

        def on_disconnect(self, reason):
            seen("ns-disconnect", reason)

    socketio.on_namespace(Chat("/chat"))

    @socketio.on("*")
    def catch_all(event, *args):
        seen("any", event, args)

    @socketio.on("fail")
    def fail():
        raise KeyError("missing")

    @socketio.on_error("/")
    def on_error(e):
        seen("error", type(e).__name__)
        return "handled"

    @socketio.event
    def ask(x):
        # call() from a handler waits for the sender's ack
        return call("question", x, timeout=WAIT)

    @socketio.on("with-callback")
    def with_callback():
        def acked(*args):
            seen("callback", request.sid, args)

        emit("cb", "please ack", callback=acked)
        return sorted(rooms())

    server = socketio.start(port=0)
    assert socketio.server is server and server.running

    inbox = Inbox()
    client = make_client(inbox, ())
    clients.append(client)
    client.on("question", lambda x: x + 1)
    client.on("cb", lambda msg: "acked:" + msg)
    client.connect(
        server.url,
        transports=[transport],
        namespaces=["/", "/chat"],
        auth={"who": "ann"},
        wait_timeout=WAIT,
    )
    chat_sid = client.get_sid("/chat")
    assert ("ns-connect", chat_sid, "/chat") in seen.wait(1)

    assert client.call("hello", "x", namespace="/chat", timeout=WAIT) == {
        "hello": "x",
        "who": "ann",
    }
    client.emit("whatever", (1, 2))
    wait_for(lambda: ("any", "whatever", (1, 2)) in seen.calls, what="catch-all")
    assert client.call("fail", timeout=WAIT) == "handled"
    assert ("error", "KeyError") in seen.calls
    assert client.call("ask", 41, timeout=WAIT) == 42
    sid = client.get_sid("/")
    assert client.call("with-callback", timeout=WAIT) == [sid]
    wait_for(lambda: ("callback", sid, ("acked:please ack",)) in seen.calls, what="callback")

    # server-side emit outside any handler, to everyone on the namespace
    got = Inbox()
    client.on("news", lambda m: got.put("news", (m,)), namespace="/chat")
    socketio.emit("news", "n1", namespace="/chat")
    assert got.get("news") == ("n1",)

    client.disconnect()
    wait_for(
        lambda: any(c[0] == "ns-disconnect" for c in seen.calls), what="namespace disconnect"
    )


def test_options():
    app = flask.Flask(__name__)
    with pytest.raises(ValueError, match="async_mode"):
        SocketIO(app, async_mode="eventlet")
    assert SocketIO(app, async_mode="threading").async_mode == "threading"
    socketio = SocketIO()
    socketio.init_app(app, cors_allowed_origins="*", resource="socket.io")
    assert app.extensions["socketio"] is socketio
    with pytest.raises(swarmcast.NotRunningError):
        socketio.emit("nobody", 1)  # not started: a mistake, said so
    server = socketio.start(port=0)
    try:
        assert server.path == "/socket.io"
    finally:
        socketio.stop()
