"""One server stopped and started again: handlers, namespaces and state maps survive,
and the official python-socketio client connects after every start."""

from __future__ import annotations

import threading

import pytest

import swarmcast
from conftest import WAIT, Inbox, connect, make_client, wait_for


def test_stop_start_stop_keeps_handlers_and_state(make_server, clients, transport):
    server = make_server(allow_subscribe=["state:agents"])
    agents = server.state("agents")
    agents["a1"] = {"status": "idle"}
    log: list[str] = []
    lock = threading.Lock()

    @server.on("connect")
    def on_connect(sid, auth):
        with lock:
            log.append(f"connect {sid}")
        return bool(auth and auth.get("token") == "ok")

    @server.on("disconnect")
    def on_disconnect(sid, reason):
        with lock:
            log.append(f"disconnect {sid} {reason}")

    @server.on("echo")
    def echo(sid, data):
        return {"echo": data}

    for round in range(3):
        server.start()
        assert server.running and server.port > 0
        inbox = Inbox()
        client = make_client(inbox, ("news", "swarmcast:snapshot"))
        clients.append(client)
        connect(client, server, transport, auth={"token": "ok"})
        sid = client.get_sid()
        # the handlers registered before the first start still answer
        assert client.call("echo", round, timeout=WAIT) == {"echo": round}
        # the state map kept its entries (and the changes of earlier rounds)
        assert client.call("subscribe", {"state": "agents"}, timeout=WAIT) == {"ok": True}
        (snapshot,) = inbox.get("swarmcast:snapshot")
        assert snapshot["entries"]["a1"] == {"status": "idle"}
        assert snapshot["entries"].get("round") == (round - 1 if round else None)
        assert server.emit("news", {"round": round}) == 1
        assert inbox.get("news") == ({"round": round},)
        server.stop()
        assert not server.running
        wait_for(lambda: not client.connected, what="client sees the stop")
        with lock:
            assert log[-1] == f"disconnect {sid} server shutting down", log
        # while stopped: emits reach no one, state maps take changes
        assert server.emit("news", {"round": "stopped"}) == 0
        agents["round"] = round
        assert server.state("agents")["round"] == round
    with lock:
        assert sum(entry.startswith("disconnect") for entry in log) == 3


def test_a_failed_start_can_be_retried(make_server):
    server = make_server()
    server.start()
    busy = make_server(port=server.port)
    with pytest.raises(swarmcast.ServerStartError, match="bind"):
        busy.start()
    assert not busy.running
    port = server.port
    server.stop()
    busy.start()
    assert busy.running and busy.port == port
