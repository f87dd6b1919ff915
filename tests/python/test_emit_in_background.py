"""`Server(emit_in_background=True)`: emits hand their fan-out to a thread of the
library and return at once (None). Checked with python-socketio clients over real
sockets: operations that follow emits (a disconnect, a room change, an emit with a
callback, a handler's answer, a stop) do not overtake them, state changes go through
the same queue (in order with the emits, read back at once by their thread), and what
would fail is raised by the call itself. The eight-thread burst (nothing lost or reordered) runs in both modes in
test_backpressure.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import swarmcast

from conftest import WAIT, connect, make_client, wait_for


@dataclass
class Watched:
    """A connected client, what it received (in wire order) and whether it left."""

    sid: str
    got: list[Any] = field(default_factory=list)
    gone: threading.Event = field(default_factory=threading.Event)


def watch(server: swarmcast.Server, clients: list[Any], transport: str, *events: str) -> Watched:
    """Connect an in-order client to a started server; record `events` into `got`."""
    client = make_client(ordered=True)
    holder: list[Watched] = []
    for event in events:
        client.on(event, lambda data: holder[0].got.append(data))
    client.on("disconnect", lambda *reason: holder[0].gone.set())
    clients.append(client)
    holder.append(Watched(sid=""))
    connect(client, server, transport)
    holder[0].sid = wait_for(lambda: (server.sids() or [None])[0], what="the sid")
    return holder[0]


def started(make_server: Any, clients: list[Any], transport: str = "websocket") -> tuple[swarmcast.Server, Watched]:
    """A started server that emits in the background, and a client watching "n"."""
    server = make_server(emit_in_background=True)
    server.start()
    return server, watch(server, clients, transport, "n")


@pytest.mark.timeout(60)
def test_a_disconnect_comes_after_the_emits_handed_off_before_it(make_server, clients, transport):
    server, client = started(make_server, clients, transport)

    for i in range(500):
        server.emit("n", i, to=client.sid)
    assert server.disconnect(client.sid)
    assert client.gone.wait(10), "the client saw its disconnect"
    assert client.got == list(range(500)), "every event before the disconnect"


@pytest.mark.timeout(60)
def test_leaving_a_room_does_not_overtake_the_emits_to_it(make_server, clients):
    server, client = started(make_server, clients)

    server.enter_room(client.sid, "agents")
    for i in range(300):
        server.emit("n", i, to="agents")
    server.leave_room(client.sid, "agents")
    server.emit("n", -1, to="agents")  # after the leave: reaches nobody
    server.emit("n", "end", to=client.sid)
    wait_for(lambda: client.got and client.got[-1] == "end", what="the last event")
    assert client.got == [*range(300), "end"]


@pytest.mark.timeout(60)
def test_an_emit_with_a_callback_comes_after_the_emits_before_it(make_server, clients):
    server, client = started(make_server, clients)

    answered = threading.Event()
    for i in range(200):
        server.emit("n", i, to=client.sid)
    server.emit("n", "q", to=client.sid, callback=lambda *a: answered.set())
    assert answered.wait(10), "the client acknowledged"
    assert client.got == [*range(200), "q"]


@pytest.mark.timeout(60)
def test_a_handlers_answer_comes_after_the_emits_it_made(make_server, clients, transport):
    # python-socketio's order: a handler's emits reach its client before its return
    # value answers the client's call; the same for an answer sent later with
    # `ack.send` (a deferred handler).
    server = make_server(emit_in_background=True)

    @server.on("work")
    def work(sid, n):
        for i in range(n):
            server.emit("n", i, to=sid)
        return "done"

    def later(ack, sid, n):  # the form AsyncServer registers its coroutines in
        for i in range(n):
            server.emit("n", -i, to=sid)
        ack.send("sent")

    server._on_deferred("later", later)
    server.start()
    client = watch(server, clients, transport, "n")
    caller = clients[-1]
    assert caller.call("work", 400, timeout=10) == "done"
    assert client.got == list(range(400)), "every event before the answer"
    client.got.clear()
    assert caller.call("later", 300, timeout=10) == "sent"
    assert client.got == [-i for i in range(300)]


@pytest.mark.timeout(60)
def test_a_stop_delivers_the_emits_handed_off_before_it(make_server, clients):
    server, client = started(make_server, clients)

    for i in range(2_000):
        server.emit("n", i)
    server.stop()
    assert client.gone.wait(10), "the stop closed the connection"
    assert client.got == list(range(2_000)), "every emit before the stop arrived"


@pytest.mark.timeout(60)
def test_a_state_change_comes_after_the_emits_before_it(make_server, clients, transport):
    server = make_server(emit_in_background=True, allow_subscribe=["state:agents"])
    agents = server.state("agents")
    server.start()
    client = watch(server, clients, transport, "n", "swarmcast:delta")
    assert clients[-1].call("subscribe", {"state": "agents"}, timeout=WAIT) == {"ok": True}

    for i in range(200):
        server.emit("n", i)
        agents[f"a{i}"] = i  # a key each: a newer value of a key would replace the older
    # The thread reads its own writes (the read waits for the handoff).
    assert agents["a199"] == 199 and agents.version == 200 and len(agents) == 200
    wait_for(lambda: len(client.got) == 400, what="every event and delta")
    expected: list[Any] = []
    for i in range(200):
        expected += [i, {"map": "agents", "version": i + 1, "key": f"a{i}", "value": i}]
    assert client.got == expected
    assert agents.delete("a0") is True and "a0" not in agents


def test_a_state_change_larger_than_any_queue_is_raised_by_the_call(make_server):
    server = make_server(emit_in_background=True, queue_bytes=65_536)
    agents = server.state("agents")
    with pytest.raises(swarmcast.EmitError, match="larger than a client's outbound queue"):
        agents["a1"] = "x" * 100_000
    assert "a1" not in agents and agents.version == 0


def test_what_would_fail_is_raised_by_the_call(make_server):
    idle = make_server(emit_in_background=True)
    with pytest.raises(swarmcast.NotRunningError):
        idle.emit("tick", 1)

    server = make_server(emit_in_background=True, queue_bytes=65_536)
    server.start()
    with pytest.raises(swarmcast.EmitError, match="namespace"):
        server.emit("tick", 1, namespace="/nowhere")
    with pytest.raises(swarmcast.EmitError, match="reserved"):
        server.emit("connect", 1)
    with pytest.raises(swarmcast.EmitError, match="larger than a client's outbound queue"):
        server.emit("tick", "x" * 100_000)
    with pytest.raises(TypeError):
        server.emit("tick", object())
    assert server.emit("tick", {"ok": True}) is None
    assert server.flush(timeout=10)
    assert server.metrics()["handoff_failed"] == 0


def test_flush_without_the_option_returns_at_once(make_server):
    server = make_server()
    server.start()
    assert server.emit("tick", 1) == 0, "counted: nobody connected"
    assert server.flush() is True
    assert "handoff_pending" not in server.metrics()
