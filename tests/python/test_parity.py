"""python-socketio / Flask-SocketIO parity: acks from raising handlers, emit before
start, catch-all namespaces, the handshake request in handlers, and the Flask-SocketIO
test client. Official python-socketio client, WebSocket only (the transports are
covered elsewhere)."""

from __future__ import annotations

import json
import logging
from typing import Any

import flask
import pytest
import socketio
from flask import request, session

import swarmcast
from conftest import WAIT, Inbox, Recorder, make_client, wait_for
from swarmcast.flask import SocketIO, emit, send


def test_raising_handler_answers_the_ack(make_server, clients) -> None:
    server = make_server()

    @server.on("boom")
    def boom(sid: str) -> None:
        raise RuntimeError("secret detail")

    @server.on("unsendable")
    def unsendable(sid: str) -> Any:
        return {"x": object()}

    @server.on("fine")
    def fine(sid: str) -> str:
        return "ok"

    server.start()
    client = make_client()
    clients.append(client)
    client.connect(server.url, transports=["websocket"], wait_timeout=WAIT)
    error = {"error": "internal server error"}  # no exception detail leaves the server
    assert client.call("boom", timeout=WAIT) == error
    assert client.call("unsendable", timeout=WAIT) == error
    assert client.call("fine", timeout=WAIT) == "ok"  # the handler thread goes on


def test_emit_before_start_raises(make_server) -> None:
    server = make_server()
    with pytest.raises(swarmcast.NotRunningError):
        server.emit("early", 1)
    server.start()
    assert server.emit("now", 1) == 0
    server.stop()
    assert server.emit("after", 1) == 0  # stopped: reaches nobody (documented)


def test_catch_all_namespace(make_server, clients) -> None:
    server = make_server()
    seen = Recorder()

    @server.on("connect", namespace="*")
    def connect(namespace: str, sid: str, auth: Any) -> None:
        seen("connect", namespace, auth)

    @server.on("hello", namespace="*")
    def hello(namespace: str, sid: str, data: Any) -> str:
        return f"{namespace}:{data}"

    @server.on("*", namespace="*")
    def anything(event: str, namespace: str, sid: str, *args: Any) -> Any:
        return [event, namespace, *args]

    @server.on("own", namespace="/declared")
    def own(sid: str) -> str:
        return "own"

    @server.on("disconnect", namespace="*")
    def disconnect(namespace: str, sid: str, reason: str) -> None:
        seen("disconnect", namespace, reason)

    server.start()
    client = make_client()
    clients.append(client)
    client.connect(
        server.url,
        transports=["websocket"],
        namespaces=["/dyn", "/declared"],
        auth={"k": 1},
        wait_timeout=WAIT,
    )
    assert client.call("hello", "x", namespace="/dyn", timeout=WAIT) == "/dyn:x"
    assert client.call("other", (1, 2), namespace="/dyn", timeout=WAIT) == ["other", "/dyn", 1, 2]
    # a declared namespace keeps its own handlers and falls back to "*" for the rest
    assert client.call("own", namespace="/declared", timeout=WAIT) == "own"
    assert client.call("hello", 5, namespace="/declared", timeout=WAIT) == "/declared:5"
    assert server.emit("pushed", 1, namespace="/dyn") == 1
    client.disconnect()
    calls = seen.wait(4)
    assert ("connect", "/dyn", {"k": 1}) in calls
    assert ("connect", "/declared", {"k": 1}) in calls
    assert {c[1] for c in calls if c[0] == "disconnect"} == {"/dyn", "/declared"}


def test_environ_in_server_and_flask_handlers(make_server, clients) -> None:
    server = make_server()
    environs: list[dict[str, str] | None] = []

    @server.on("connect")
    def connect(sid: str) -> None:
        environs.append(server.get_environ(sid))

    server.start()
    client = make_client()
    clients.append(client)
    client.connect(
        server.url + "?room=blue&x=1",
        headers={"X-Custom": "yes", "Cookie": "a=1"},
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    wait_for(lambda: environs, what="connect")
    env = environs[0]
    assert env is not None
    assert "room=blue" in env["QUERY_STRING"] and "x=1" in env["QUERY_STRING"]
    assert env["HTTP_X_CUSTOM"] == "yes"
    assert env["HTTP_COOKIE"] == "a=1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["PATH_INFO"] == "/socket.io/"
    assert server.get_environ("nobody") is None


def test_flask_request_sees_the_handshake(clients) -> None:
    app = flask.Flask(__name__)
    socketio = SocketIO(app)
    got = Recorder()

    @socketio.on("connect")
    def connect() -> None:
        got(request.args.get("room"), request.headers.get("X-Custom"),
            request.cookies.get("a"), request.remote_addr)

    server = socketio.start(port=0)
    try:
        client = make_client()
        clients.append(client)
        client.connect(
            server.url + "?room=blue",
            headers={"X-Custom": "yes", "Cookie": "a=1"},
            transports=["websocket"],
            wait_timeout=WAIT,
        )
        assert got.wait()[0] == ("blue", "yes", "1", "127.0.0.1")
    finally:
        socketio.stop()


def test_flask_catch_all_namespace(clients) -> None:
    app = flask.Flask(__name__)
    socketio = SocketIO(app)

    @socketio.on("where", namespace="*")
    def where(data: Any) -> Any:
        return [request.namespace, data]

    @socketio.on("*", namespace="*")
    def anything(event: str, data: Any) -> Any:
        return [event, request.namespace, data]

    server = socketio.start(port=0)
    try:
        client = make_client()
        clients.append(client)
        client.connect(server.url, namespaces=["/a"], transports=["websocket"], wait_timeout=WAIT)
        assert client.call("where", 1, namespace="/a", timeout=WAIT) == ["/a", 1]
        assert client.call("what", 2, namespace="/a", timeout=WAIT) == ["what", "/a", 2]
    finally:
        socketio.stop()


@pytest.mark.parametrize("background", [False, True], ids=["emit", "emit_in_background"])
def test_flask_test_client(background: bool) -> None:
    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    socketio = SocketIO(app, emit_in_background=background)
    left: list[str] = []

    @app.route("/login")
    def login() -> str:
        session["user"] = "ann"
        return ""

    @socketio.on("connect")
    def connect(auth: Any) -> Any:
        if request.args.get("refuse"):
            return False
        send(json.dumps({"args": request.args.to_dict(), "auth": auth,
                         "user": session.get("user"), "h": request.headers.get("X-H")}))
        return None

    @socketio.on("echo")
    def echo(data: Any) -> Any:
        emit("echoed", data)
        emit("everyone", data, broadcast=True)
        return data

    @socketio.on("disconnect")
    def disconnect() -> None:
        left.append(request.sid)  # type: ignore[attr-defined]

    flask_client = app.test_client()
    flask_client.get("/login")
    try:
        client = socketio.test_client(
            app, query_string="a=1", headers={"X-H": "v"}, auth={"t": 1},
            flask_test_client=flask_client,
        )
        other = socketio.test_client(app)
        assert client.is_connected() and other.is_connected()
        hello = json.loads(client.get_received()[0]["args"])
        assert hello == {"args": {"a": "1"}, "auth": {"t": 1}, "user": "ann", "h": "v"}
        other.get_received()
        assert client.emit("echo", {"b": b"\x01"}, callback=True) == {"b": b"\x01"}
        assert [p["name"] for p in client.get_received()] == ["echoed", "everyone"]
        assert [p["name"] for p in other.get_received()] == ["everyone"]
        client.disconnect()
        assert not client.is_connected() and len(left) == 1
        refused = socketio.test_client(app, query_string="refuse=1")
        assert not refused.is_connected()
    finally:
        socketio.stop()


def test_logging(make_server, clients, caplog) -> None:
    server = make_server(logger=True, engineio_logger=True)

    @server.on("connect")
    def connect(sid: str, auth: Any) -> bool:
        return auth == {"ok": True}

    server.start()
    with caplog.at_level(logging.INFO, logger="swarmcast"):
        client = make_client()
        clients.append(client)
        client.connect(server.url, auth={"ok": True}, wait_timeout=WAIT)  # polling, then upgrade
        refused = make_client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            refused.connect(server.url, auth={"ok": False}, transports=["websocket"], wait_timeout=WAIT)
        client.disconnect()
        wait_for(lambda: "disconnected" in caplog.text, what="disconnect log")
        wait_for(lambda: "transport upgraded" in caplog.text, what="upgrade log")
    text = caplog.text
    assert "connected sid=" in text and "remote=127.0.0.1" in text
    assert "connection refused" in text and "Connection rejected by server" in text
    assert "reason=" in text
    assert any(r.name == "swarmcast.engine" for r in caplog.records)
