"""Interop regressions with the official python-socketio 5.x client, over websocket and
over long-polling: a burst of 10,000 small events emitted at once (all arrive, in order,
although python-engineio takes at most 16 packets per polling response) and a forced
transport drop (the TCP connections cut under the client, which reconnects)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from conftest import WAIT, InOrderClient, wait_for

BURST = 10_000


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the server whose open connections can be cut
    at once, as a network failure would (the listener stays, so the client reconnects)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=WAIT)
                upstream.settimeout(None)
            except OSError:
                return  # closed
            with self.lock:
                self.open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """End every open connection at once, both ways (shutdown also wakes the pumps
        blocked reading them; a close alone would wait for them)."""
        with self.lock:
            cut, self.open = self.open, []
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy_for():
    made: list[CuttableProxy] = []

    def build(port: int) -> CuttableProxy:
        proxy = CuttableProxy(port)
        made.append(proxy)
        return proxy

    yield build
    for proxy in made:
        proxy.close()


def burst_client(clients: list[Any], reconnection: bool = False) -> tuple[Any, list[Any]]:
    """A client whose handlers run in wire order, recording the `seq` of every `b`."""
    client = InOrderClient(
        reconnection=reconnection,
        reconnection_delay=0.2,
        reconnection_delay_max=0.5,
        randomization_factor=0,
    )
    got: list[Any] = []
    client.on("b", lambda data: got.append(data["seq"]))
    clients.append(client)
    return client, got


def burst(server: Any, sid: str, got: list[Any], transport: str) -> None:
    """Emit BURST events to `sid` at once, then wait for all of them, in order."""
    for seq in range(BURST):
        assert server.emit("b", {"seq": seq}, to=sid) == 1
    wait_for(lambda: len(got) >= BURST, 120, f"{BURST} events over {transport}")
    assert got == list(range(BURST)), f"out of order over {transport}"


@pytest.mark.timeout(180)
def test_a_burst_emitted_at_once_arrives_in_order(make_server, clients, transport):
    server = make_server()  # default configuration
    server.start()
    client, got = burst_client(clients)
    client.connect(server.url, transports=[transport], wait_timeout=WAIT)
    burst(server, client.get_sid(), got, transport)
    assert client.connected and client.transport() == transport
    assert server.metrics()["slow_consumers"] == 0


@pytest.mark.timeout(180)
def test_a_forced_transport_drop_then_reconnect_and_burst(
    make_server, clients, transport, proxy_for
):
    server = make_server()  # default configuration
    reasons: list[Any] = []
    server.on("disconnect", lambda sid, reason: reasons.append(reason))
    server.start()
    proxy = proxy_for(server.port)
    client, got = burst_client(clients, reconnection=True)
    client_reasons: list[Any] = []
    client.on("disconnect", lambda reason: client_reasons.append(reason))
    client.connect(proxy.url, transports=[transport], wait_timeout=WAIT)
    first_sid = client.get_sid()
    # Let the client's next long-poll GET go out: cut between two GETs, the pooled
    # connection would just be replaced (nothing to see for the client).
    time.sleep(0.3)
    proxy.cut()
    wait_for(lambda: client_reasons, WAIT, "the client to see the drop")
    assert client_reasons == [client.reason.TRANSPORT_ERROR]
    wait_for(lambda: client.connected and client.get_sid() not in (None, first_sid), 30, "reconnect")
    wait_for(lambda: reasons, 30, "the server to see the drop")
    assert client.transport() == transport
    burst(server, client.get_sid(), got, transport)
