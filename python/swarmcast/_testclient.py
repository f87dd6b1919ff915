"""``SocketIO.test_client``: Flask-SocketIO's ``SocketIOTestClient`` over a real
connection to the running swarmcast server.

Flask-SocketIO's test client calls python-socketio's internals in-process; swarmcast's
server is Rust, so this client speaks Engine.IO v4 long-polling (standard library only)
to the server on 127.0.0.1 and makes every call as synchronous as Flask-SocketIO's:

* ``emit``/``send`` return once the server has run the handler (and everything it
  queued before it); with ``callback=True`` they return the ack's arguments.
* ``get_received`` returns what the server had queued to this client by then: it asks
  the server to send a marker to each of its sockets after their pending handlers, and
  reads up to the marker.
* ``disconnect`` returns once the disconnect handler has run.

Handlers see the environ Flask-SocketIO's test client builds (``query_string``,
``headers``, the Flask test client's cookies), not the HTTP request this client makes:
the connection carries a one-time token the ``SocketIO`` facade swaps for it.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import flask

    from .flask import SocketIO

SYNC_EVENT = "swarmcast:test-sync"
TOKEN_PARAM = "swarmcast_test_client"
_WAIT = 10.0


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, attachments) for key, value in data.items()}
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, list):
        return [_reconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and "num" in data:
            return attachments[data["num"]]
        return {key: _reconstruct(value, attachments) for key, value in data.items()}
    return data


class _Packet:
    """A Socket.IO packet as it came off the wire (attachments still to come)."""

    def __init__(self, text: str) -> None:
        self.kind = int(text[0])
        i = 1
        self.attachments = 0
        if self.kind in (5, 6):
            dash = text.index("-", i)
            self.attachments = int(text[i:dash])
            i = dash + 1
        self.namespace = "/"
        if i < len(text) and text[i] == "/":
            comma = text.find(",", i)
            end = len(text) if comma < 0 else comma
            self.namespace = text[i:end]
            i = end + 1
        start = i
        while i < len(text) and text[i].isdigit():
            i += 1
        self.id = int(text[start:i]) if i > start else None
        self.data: Any = json.loads(text[i:]) if i < len(text) else None
        self.blobs: list[bytes] = []


def _encode(kind: int, namespace: str, data: Any = None, id: int | None = None) -> list[str]:
    """A Socket.IO packet as Engine.IO polling messages (binary as ``b<base64>``)."""
    blobs: list[bytes] = []
    if data is not None:
        data = _deconstruct(data, blobs)
    if blobs:
        kind += 3  # EVENT -> BINARY_EVENT, ACK -> BINARY_ACK
    head = str(kind) + (f"{len(blobs)}-" if blobs else "")
    if namespace != "/":
        head += namespace + ","
    if id is not None:
        head += str(id)
    body = "" if data is None else json.dumps(data, separators=(",", ":"))
    return ["4" + head + body] + ["b" + base64.b64encode(b).decode() for b in blobs]


class SocketIOTestClient:
    """Flask-SocketIO's test client API: ``emit``, ``send``, ``get_received``,
    ``is_connected``, ``connect``, ``disconnect``, ``eio_sid``."""

    def __init__(
        self,
        app: flask.Flask,
        socketio: SocketIO,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> None:
        self.app = app
        self.socketio = socketio
        self.flask_test_client = flask_test_client
        self.server = socketio._test_server()
        self.eio_sid: str | None = None
        self.connected: dict[str, bool] = {}
        self.sids: dict[str, str] = {}
        self.queue: list[dict[str, Any]] = []
        self.callback_counter = 0
        self._lock = threading.Condition()
        self._acks: dict[int, Any] = {}
        self._markers: set[str] = set()
        self._pending: _Packet | None = None
        self._closed = False
        self._reader: threading.Thread | None = None
        self.connect(namespace=namespace, query_string=query_string, headers=headers, auth=auth)

    # -- Engine.IO transport ---------------------------------------------------------

    def _request(self, method: str, query: str, body: str | None = None) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=_WAIT * 3)
        try:
            path = f"{self.server.path.rstrip('/')}/?EIO=4&transport=polling&{query}"
            conn.request(method, path, body=body.encode() if body is not None else None)
            response = conn.getresponse()
            text = response.read().decode()
            if response.status != 200:
                raise ConnectionError(f"HTTP {response.status}: {text}")
            return text
        finally:
            conn.close()

    def _post(self, messages: list[str]) -> None:
        self._request("POST", f"sid={self.eio_sid}", "\x1e".join(messages))

    def _open(self, query_string: str | None, environ_token: str) -> None:
        query = f"{TOKEN_PARAM}={environ_token}"
        if query_string:
            query += "&" + query_string.lstrip("?")
        handshake = self._request("GET", query)
        if not handshake.startswith("0"):
            raise ConnectionError(f"unexpected handshake {handshake!r}")
        self.eio_sid = json.loads(handshake[1:])["sid"]
        self._reader = threading.Thread(target=self._read, daemon=True, name="swarmcast-test-client")
        self._reader.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                body = self._request("GET", f"sid={self.eio_sid}")
            except Exception:  # noqa: BLE001 - the session ended
                break
            for message in body.split("\x1e"):
                if message == "2":
                    self._post(["3"])
                elif message == "1":
                    self._closed = True
                elif message.startswith("4"):
                    self._on_packet(_Packet(message[1:]))
                elif message.startswith("b") and self._pending is not None:
                    self._pending.blobs.append(base64.b64decode(message[1:]))
                    if len(self._pending.blobs) == self._pending.attachments:
                        packet, self._pending = self._pending, None
                        self._on_complete(packet)
        with self._lock:
            self._closed = True
            for ns in self.connected:
                self.connected[ns] = False
            self._lock.notify_all()

    def _on_packet(self, packet: _Packet) -> None:
        if packet.attachments:
            self._pending = packet
        else:
            self._on_complete(packet)

    def _on_complete(self, packet: _Packet) -> None:
        data = _reconstruct(packet.data, packet.blobs)
        with self._lock:
            ns = packet.namespace
            if packet.kind == 0:
                self.connected[ns] = True
                self.sids[ns] = data["sid"]
            elif packet.kind in (1, 4):
                self.connected[ns] = False
            elif packet.kind in (2, 5):
                name, args = data[0], data[1:]
                if name == SYNC_EVENT:
                    self._markers.add(args[0])
                elif name in ("message", "json"):
                    self.queue.append({"name": name, "args": args[0] if args else None, "namespace": ns})
                else:
                    self.queue.append({"name": name, "args": args, "namespace": ns})
            elif packet.kind in (3, 6) and packet.id is not None:
                self._acks[packet.id] = data
            self._lock.notify_all()

    def _wait(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + _WAIT
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"test client: no {what} within {_WAIT}s")
                self._lock.wait(left)

    def _sync(self, namespace: str) -> None:
        """Wait until the server ran every handler queued for this client's socket on
        `namespace` and what they sent it has arrived."""
        sid = self.sids.get(namespace)
        if sid is None:
            return
        marker = uuid.uuid4().hex
        done = threading.Event()
        reached = [False]

        def after() -> None:
            sent = self.server.emit(SYNC_EVENT, marker, to=sid, namespace=namespace)
            if sent is None:  # handed off (emit_in_background): queued once flushed
                self.server.flush(_WAIT)
                sent = int(sid in self.server.sids(namespace))
            reached[0] = sent > 0
            done.set()

        if not self.server._after_handlers(sid, after):
            return
        if not done.wait(_WAIT):
            raise TimeoutError("test client: the server's handlers did not finish")
        if reached[0]:
            self._wait(lambda: marker in self._markers or not self.connected.get(namespace), "sync marker")
            self._markers.discard(marker)
        else:  # the socket left: its DISCONNECT is on the way
            self._wait(lambda: not self.connected.get(namespace), "disconnect")

    # -- Flask-SocketIO's API --------------------------------------------------------

    def is_connected(self, namespace: str | None = None) -> bool:
        return self.connected.get(namespace or "/", False)

    def connect(
        self,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
    ) -> None:
        namespace = namespace or "/"
        token = uuid.uuid4().hex
        self.socketio._test_environs[token] = self._environ(query_string, headers)
        if self.eio_sid is None:
            self._open(query_string, token)
        with self._lock:
            self.connected.pop(namespace, None)
        self._post(_encode(0, namespace, auth))
        self._wait(lambda: namespace in self.connected, "CONNECT reply")
        self._sync(namespace)

    def _environ(self, query_string: str | None, headers: dict[str, str] | None) -> dict[str, Any]:
        from flask.testing import EnvironBuilder

        url = self.server.path
        if query_string:
            url += ("" if query_string.startswith("?") else "?") + query_string
        if self.flask_test_client is not None:
            req = self.flask_test_client._request_from_builder_args(
                args=(), kwargs={"path": url, "headers": headers}
            )
            environ: dict[str, Any] = req.environ
            self.flask_test_client._add_cookies_to_wsgi(environ)
        else:
            environ = EnvironBuilder(self.app, path=url, headers=headers).get_environ()
        environ["flask.app"] = self.app
        return environ

    def disconnect(self, namespace: str | None = None) -> None:
        namespace = namespace or "/"
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        sid = self.sids[namespace]
        self._post(_encode(1, namespace))
        with self._lock:
            self.connected[namespace] = False
        done = threading.Event()
        if self.server._after_handlers(sid, done.set):
            done.wait(_WAIT)
        del self.connected[namespace]

    def emit(self, event: str, *args: Any, **kwargs: Any) -> Any:
        namespace = kwargs.pop("namespace", None) or "/"
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        callback = kwargs.pop("callback", False)
        id = None
        if callback:
            self.callback_counter += 1
            id = self.callback_counter
        self._post(_encode(2, namespace, [event, *args], id))
        self._sync(namespace)
        errors = self.socketio._test_errors.pop(self.sids.get(namespace, ""), None)
        if errors:
            raise errors[0]
        if id is None:
            return None
        self._wait(lambda: id in self._acks or not self.connected.get(namespace), "ack")
        ack = self._acks.pop(id, [])
        return ack[0] if len(ack) == 1 else ack

    def send(
        self, data: Any, json: bool = False, callback: bool = False, namespace: str | None = None
    ) -> Any:
        return self.emit("json" if json else "message", data, callback=callback, namespace=namespace)

    def get_received(self, namespace: str | None = None) -> list[dict[str, Any]]:
        namespace = namespace or "/"
        if not self.is_connected(namespace):
            raise RuntimeError("not connected")
        self._sync(namespace)
        with self._lock:
            received = [p for p in self.queue if p["namespace"] == namespace]
            self.queue = [p for p in self.queue if p["namespace"] != namespace]
        return received

    def close(self) -> None:
        """End the connection (Flask-SocketIO's client has nothing to close)."""
        if self.eio_sid is not None and not self._closed:
            self._closed = True
            try:
                self._post(["1"])
            except Exception:  # noqa: BLE001 - already gone
                pass
