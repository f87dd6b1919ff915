"""A WSGI application served by swarmcast on its own port (``Server.mount_wsgi``):
PEP 3333 environ, streamed bodies, ``close()``, errors answered 500, the body limit, and
a Flask app whose page and Socket.IO client share one origin."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

import flask

from conftest import connect, make_client, wait_for


def request(server: Any, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


class Pep3333App:
    """Answers what it saw; streams, fails or reads the body on demand."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return self._stream()
        body = environ["wsgi.input"].read()
        seen = {
            key: environ[key]
            for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                        "SERVER_PROTOCOL", "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH",
                        "HTTP_X_CUSTOM", "wsgi.url_scheme")
            if key in environ
        }
        seen["wsgi.version"] = list(environ["wsgi.version"])
        seen["body"] = body.decode()
        seen["file_wrapper"] = callable(environ["wsgi.file_wrapper"])
        out = json.dumps(seen).encode()
        start_response("201 Created", [("Content-Type", "application/json"),
                                       ("Content-Length", str(len(out)))])
        return [out]

    def _stream(self) -> Any:
        try:
            for part in (b"one,", b"", b"two,", b"three"):
                yield part
        finally:
            self.closed.set()


def test_a_pep_3333_app_on_the_socket_io_port(make_server, clients):
    server = make_server()
    app = Pep3333App()
    server.mount_wsgi(app, max_body=1024)
    server.start()

    status, headers, body = request(
        server, "POST", "/caf%C3%A9?a=1&b=2", b"x=1",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "yes"},
    )
    assert status == 201
    seen = json.loads(body)
    assert seen["REQUEST_METHOD"] == "POST"
    assert seen["SCRIPT_NAME"] == ""
    assert seen["PATH_INFO"] == "/caf\u00c3\u00a9"  # PEP 3333: bytes as latin-1
    assert seen["QUERY_STRING"] == "a=1&b=2"
    assert seen["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert seen["CONTENT_LENGTH"] == "3"
    assert seen["HTTP_X_CUSTOM"] == "yes"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http" and seen["wsgi.version"] == [1, 0]
    assert seen["body"] == "x=1" and seen["file_wrapper"]

    status, headers, body = request(server, "GET", "/stream")
    assert (status, body) == (200, b"one,two,three")
    assert headers.get("transfer-encoding") == "chunked"
    assert app.closed.wait(5), "close() was called"

    status, _, body = request(server, "GET", "/boom")
    assert status == 500 and b"Internal Server Error" in body

    status, _, _ = request(server, "POST", "/upload", b"x" * 2048)
    assert status == 413

    status, headers, body = request(server, "HEAD", "/")
    assert status == 201 and body == b""

    # Socket.IO on the same port.
    client = make_client()
    clients.append(client)
    connect(client, server, "websocket")
    assert client.connected


def test_a_flask_app_and_its_socket_io_share_one_origin(make_server, clients):
    app = flask.Flask(__name__)

    @app.route("/")
    def index() -> str:
        return "<html>dashboard</html>"

    @app.route("/api/agents")
    def agents() -> Any:
        return flask.jsonify({"agents": ["a1", "a2"], "q": flask.request.args.get("q")})

    server = make_server()
    got: list[Any] = []
    server.on("hello", lambda sid, data: got.append(data))
    server.mount_wsgi(app)
    server.start()
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and body == b"<html>dashboard</html>"
    assert headers["content-type"].startswith("text/html")
    status, _, body = request(server, "GET", "/api/agents?q=x")
    assert json.loads(body) == {"agents": ["a1", "a2"], "q": "x"}
    assert request(server, "GET", "/missing")[0] == 404

    client = make_client()
    clients.append(client)
    connect(client, server, "polling")
    client.emit("hello", {"n": 1})
    wait_for(lambda: got, what="the event on the app's port")
    assert got == [{"n": 1}]


def test_requests_blocked_in_io_bring_more_workers_in(make_server):
    """Requests run on the worker holding the GIL one after the other; one that waits
    while the running request is blocked (here in time.sleep, the GIL released) brings
    another worker in, so I/O-bound requests overlap."""
    import time

    running = []
    peak = [0]
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            running.append(threading.get_ident())
            peak[0] = max(peak[0], len(running))
        time.sleep(0.5)
        with lock:
            running.remove(threading.get_ident())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]

    server = make_server()
    server.mount_wsgi(app, threads=4)
    server.start()
    results: list[int] = []

    def get() -> None:
        results.append(request(server, "GET", "/slow")[0])

    threads = [threading.Thread(target=get) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert results == [200] * 4
    # Two or more ran at once: the ones that waited did not wait for the sleeper.
    assert peak[0] >= 2, peak


def test_a_client_that_goes_away_mid_response_is_not_an_application_error(make_server, caplog):
    """The body stops, close() is called, and nothing is logged as the application's
    failure: a browser navigating away is not a bug in the app."""
    import logging
    import socket as socketlib
    import time

    closed = threading.Event()

    class Endless:
        def __iter__(self) -> Any:
            for _ in range(10_000):
                time.sleep(0.005)
                yield b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless()

    server = make_server()
    server.mount_wsgi(app, threads=2)
    server.start()
    caplog.set_level(logging.DEBUG, logger="swarmcast")
    with socketlib.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert closed.wait(10), "close() called after the client left"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
