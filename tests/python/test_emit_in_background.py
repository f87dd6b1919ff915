"""`Server(emit_in_background=True)`: emits hand their fan-out to a thread of the
library and return at once (None). Checked with python-socketio clients over real
sockets: nothing is lost or reordered, operations that follow emits (a disconnect, a
room change, an emit with a callback) do not overtake them, and what would fail is
raised by the call itself."""

from __future__ import annotations

import threading

import pytest
import swarmcast

from conftest import Inbox, connect, make_client, wait_for

THREADS = 8
EACH = 2_000


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_a_burst_from_eight_threads_arrives_complete_and_in_order(make_server, clients, transport):
    server = make_server(emit_in_background=True)
    server.start()
    seen: list[list[int]] = [[] for _ in range(THREADS)]
    client = make_client(ordered=True)
    client.on("burst", lambda data: seen[data["t"]].append(data["i"]))
    disconnects: list[str] = []
    client.on("disconnect", lambda *reason: disconnects.append(str(reason)))
    clients.append(client)
    connect(client, server, transport)

    start = threading.Barrier(THREADS)
    returned: list[object] = []
    errors: list[BaseException] = []

    def produce(t: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                returned.append(server.emit("burst", {"t": t, "i": i}))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "an emitting thread hung"
    assert not errors, errors
    assert set(returned) == {None}, "handed off: no count"
    assert server.flush(timeout=60), "the handoff drained"
    wait_for(
        lambda: sum(len(s) for s in seen) >= THREADS * EACH,
        timeout=120,
        what=f"{THREADS * EACH} events over {transport}",
    )
    for t in range(THREADS):
        assert seen[t] == list(range(EACH)), f"thread {t}: complete and in order"
    assert not disconnects, disconnects
    metrics = server.metrics()
    assert metrics["slow_consumers"] == 0
    assert metrics["emits"] >= THREADS * EACH


@pytest.mark.timeout(60)
def test_a_disconnect_comes_after_the_emits_handed_off_before_it(make_server, clients, transport):
    server = make_server(emit_in_background=True)
    server.start()
    got: list[int] = []
    client = make_client(ordered=True)
    client.on("n", got.append)
    gone = threading.Event()
    client.on("disconnect", lambda *reason: gone.set())
    clients.append(client)
    connect(client, server, transport)
    sid = wait_for(lambda: (server.sids() or [None])[0], what="the sid")

    for i in range(500):
        server.emit("n", i, to=sid)
    assert server.disconnect(sid)
    assert gone.wait(10), "the client saw its disconnect"
    assert got == list(range(500)), "every event before the disconnect"


@pytest.mark.timeout(60)
def test_leaving_a_room_does_not_overtake_the_emits_to_it(make_server, clients):
    server = make_server(emit_in_background=True)
    server.start()
    inbox = Inbox()
    got: list[int] = []
    client = make_client(inbox, ("after",), ordered=True)
    client.on("to-room", got.append)
    clients.append(client)
    connect(client, server, "websocket")
    sid = wait_for(lambda: (server.sids() or [None])[0], what="the sid")

    server.enter_room(sid, "agents")
    for i in range(300):
        server.emit("to-room", i, to="agents")
    server.leave_room(sid, "agents")
    server.emit("to-room", -1, to="agents")  # after the leave: reaches nobody
    server.emit("after", "end", to=sid)
    assert inbox.get("after") == ("end",)
    assert got == list(range(300))


@pytest.mark.timeout(60)
def test_an_emit_with_a_callback_comes_after_the_emits_before_it(make_server, clients):
    server = make_server(emit_in_background=True)
    server.start()
    got: list[object] = []
    client = make_client(ordered=True)
    client.on("n", got.append)

    def question(data: object) -> str:
        got.append(data)
        return "answer"

    client.on("question", question)
    clients.append(client)
    connect(client, server, "websocket")
    sid = wait_for(lambda: (server.sids() or [None])[0], what="the sid")

    answers: list[tuple[object, ...]] = []
    answered = threading.Event()
    for i in range(200):
        server.emit("n", i, to=sid)
    server.emit("question", "q", to=sid, callback=lambda *a: (answers.append(a), answered.set()))
    assert answered.wait(10)
    assert answers == [("answer",)]
    assert got == [*range(200), "q"]


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


def test_flush_without_the_option_returns_at_once(make_server):
    server = make_server()
    server.start()
    assert server.emit("tick", 1) == 0, "counted: nobody connected"
    assert server.flush() is True


@pytest.mark.timeout(60)
def test_a_stop_delivers_the_emits_handed_off_before_it(make_server, clients):
    server = make_server(emit_in_background=True)
    server.start()
    got: list[int] = []
    client = make_client(ordered=True)
    client.on("n", got.append)
    gone = threading.Event()
    client.on("disconnect", lambda *reason: gone.set())
    clients.append(client)
    connect(client, server, "websocket")
    wait_for(lambda: server.sids(), what="connected")

    for i in range(2_000):
        server.emit("n", i)
    server.stop()
    assert gone.wait(10), "the stop closed the connection"
    assert got == list(range(2_000)), "every emit before the stop arrived"
