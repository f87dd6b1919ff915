"""swarmcast.Server driven by the official python-socketio client, over websocket and
over long-polling."""

from __future__ import annotations

import collections
import enum
import logging
import math
import threading
import time
from typing import Any

import pytest
import socketio

import swarmcast
from conftest import WAIT, Inbox, Recorder, connect, make_client, wait_for


def test_connect_with_auth(make_server, clients, transport):
    server = make_server()
    seen = Recorder()

    @server.on("connect")
    def on_connect(sid, auth):
        seen(sid, auth)

    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, transport, auth={"token": "secret", "n": [1, 2]})
    sid, auth = seen.wait()[0]
    assert auth == {"token": "secret", "n": [1, 2]}
    assert sid == client.get_sid()
    assert sid in server.sids()
    assert client.transport() == transport


def test_connect_handler_without_auth_argument(make_server, clients, transport):
    server = make_server()
    seen = Recorder()
    server.on("connect", lambda sid: seen(sid))
    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, transport)
    assert seen.wait()[0] == (client.get_sid(),)


@pytest.mark.parametrize(
    "refusal, expected",
    [
        (
            lambda: swarmcast.ConnectionRefusedError("unauthorized", {"retry": False}),
            {"message": "unauthorized", "data": {"retry": False}},
        ),
        (lambda: swarmcast.ConnectionRefusedError("no data"), {"message": "no data"}),
        (None, {"message": "Connection rejected by server"}),
    ],
    ids=["message-and-data", "message-only", "return-false"],
)
def test_rejected_connect(make_server, clients, transport, refusal, expected):
    server = make_server()
    connected = Recorder()

    @server.on("connect")
    def on_connect(sid, auth):
        if refusal is None:
            return False
        raise refusal()

    server.on("disconnect", lambda sid, reason: connected("disconnect", sid))
    server.start()
    inbox = Inbox()
    client = make_client(inbox, ("connect_error",))
    clients.append(client)
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(client, server, transport, auth={"token": "wrong"})
    (error,) = inbox.get("connect_error")
    assert error == expected
    assert server.metrics()["connects_refused"] == 1
    assert server.sids() == []
    assert connected.calls == []  # a refused socket never "disconnects"


def test_events_both_ways(make_server, clients, transport):
    server = make_server()

    @server.on("echo")
    def echo(sid, *args):
        server.emit("echoed", args, to=sid)

    @server.event
    def shout(sid, text):
        server.emit("shouted", text.upper())

    server.start()
    inbox = Inbox()
    client = make_client(inbox, ("echoed", "shouted", "hello"))
    clients.append(client)
    connect(client, server, transport)

    client.emit("echo", ({"a": 1, "b": [True, None, 2.5]}, "two", 3))
    assert inbox.get("echoed") == ({"a": 1, "b": [True, None, 2.5]}, "two", 3)
    client.emit("shout", "hi")
    assert inbox.get("shouted") == ("HI",)
    # server-initiated, to everyone
    assert server.emit("hello", {"x": 1}) == 1
    assert inbox.get("hello") == ({"x": 1},)
    # no data: no argument
    server.emit("hello")
    assert inbox.get("hello") == ()
    # send() is event "message"
    message_inbox = Inbox()
    client.on("message", lambda data: message_inbox.put("message", (data,)))
    server.send("plain")
    assert message_inbox.get("message") == ("plain",)


def test_catch_all_handler(make_server, clients, transport):
    server = make_server()
    seen = Recorder()
    server.on("known", lambda sid, x: seen("known", x))
    server.on("*", lambda event, sid, *args: seen("*", event, args))
    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, transport)
    client.emit("known", 1)
    client.emit("other", (2, 3))
    calls = seen.wait(2)
    assert ("known", 1) in calls
    assert ("*", "other", (2, 3)) in calls


def test_acks_client_to_server(make_server, clients, transport):
    server = make_server()
    server.on("add", lambda sid, a, b: a + b)
    server.on("pair", lambda sid: ("left", {"right": True}))
    server.on("nothing", lambda sid: None)
    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, transport)
    assert client.call("add", (2, 3), timeout=WAIT) == 5
    assert client.call("pair", timeout=WAIT) == ("left", {"right": True})
    assert client.call("nothing", timeout=WAIT) is None


def test_acks_server_to_client(make_server, clients, transport):
    server = make_server()
    server.start()
    client = make_client()
    clients.append(client)
    client.on("double", lambda x: x * 2)
    client.on("both", lambda a, b: (b, a))
    client.on("slow", lambda: time.sleep(2))
    connect(client, server, transport)
    sid = client.get_sid()
    assert server.call("double", 21, to=sid, timeout=WAIT) == 42
    assert server.call("both", (1, "x"), to=sid, timeout=WAIT) == ("x", 1)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.call("slow", to=sid, timeout=0.3)
    assert time.monotonic() - started < 1.5
    with pytest.raises(swarmcast.DisconnectedError):
        server.call("double", 1, to="not-a-sid")
    with pytest.raises(ValueError):
        server.call("double", 1)

    # emit(callback=...) runs the callback on a handler thread when the ack comes
    got = Recorder()
    server.emit("double", 5, to=sid, callback=got)
    assert got.wait()[0] == (10,)


def test_rooms(make_server, clients, transport):
    server = make_server()
    server.start()
    inboxes = [Inbox(), Inbox(), Inbox()]
    made = []
    for inbox in inboxes:
        client = make_client(inbox, ("news",))
        clients.append(client)
        made.append(connect(client, server, transport))
    a, b, c = (client.get_sid() for client in made)

    server.enter_room(a, "red")
    server.enter_room(b, "red")
    server.enter_room(c, "blue")
    assert sorted(server.rooms(a)) == sorted([a, "red"])
    assert server.rooms(a)[0] == a

    assert server.emit("news", "for red", to="red") == 2
    assert inboxes[0].get("news") == ("for red",)
    assert inboxes[1].get("news") == ("for red",)
    assert server.emit("news", "red and blue minus a", room=["red", "blue"], skip_sid=a) == 2
    assert inboxes[1].get("news") == ("red and blue minus a",)
    assert inboxes[2].get("news") == ("red and blue minus a",)
    assert inboxes[0].empty_for(0.3)

    server.leave_room(b, "red")
    assert server.emit("news", "red again", to="red") == 1
    assert inboxes[0].get("news") == ("red again",)
    server.close_room("blue")
    assert server.emit("news", "blue", to="blue") == 0
    assert server.rooms("unknown-sid") == []
    # a sid is a room of its own
    assert server.emit("news", "only c", to=c) == 1
    assert inboxes[2].get("news") == ("only c",)


def test_binary_both_ways(make_server, clients, transport):
    server = make_server()
    seen = Recorder()

    @server.on("upload")
    def upload(sid, meta, blob):
        seen(meta, blob)
        return {"size": len(blob), "echo": blob}

    server.start()
    inbox = Inbox()
    client = make_client(inbox, ("photo",))
    clients.append(client)
    connect(client, server, transport)

    blob = bytes(range(256)) * 4
    assert client.call("upload", ({"name": "x"}, blob), timeout=WAIT) == {
        "size": 1024,
        "echo": blob,
    }
    assert seen.wait()[0] == ({"name": "x"}, blob)

    server.emit(
        "photo",
        {
            "a": b"\x00\x01",
            "b": [bytearray(b"\x02"), memoryview(b"\x03\x04")],
            "text": "t",
        },
    )
    (payload,) = inbox.get("photo")
    assert payload == {"a": b"\x00\x01", "b": [b"\x02", b"\x03\x04"], "text": "t"}


def test_disconnect_reasons(make_server, clients, transport):
    # A short heartbeat bounds the third case below (see there).
    server = make_server(ping_interval=1.0, ping_timeout=2.0)
    reasons = Recorder()
    server.on("disconnect", lambda sid, reason: reasons(sid, reason))
    server.start()

    # server-initiated
    client_reasons: list[Any] = []
    client = make_client()
    clients.append(client)
    client.on("disconnect", lambda reason: client_reasons.append(reason))
    connect(client, server, transport)
    sid = client.get_sid()
    assert server.disconnect(sid) is True
    assert reasons.wait(1)[0] == (sid, "server namespace disconnect")
    wait_for(lambda: client_reasons, what="client disconnect event")
    assert client_reasons == [client.reason.SERVER_DISCONNECT]
    assert server.disconnect(sid) is False

    # client-initiated: the client's DISCONNECT packet for the namespace
    client2 = make_client()
    clients.append(client2)
    connect(client2, server, transport)
    sid2 = client2.get_sid()
    client2._send_packet(client2.packet_class(socketio.packet.DISCONNECT, namespace="/"))
    assert reasons.wait(2)[1] == (sid2, "client namespace disconnect")
    client2.disconnect()

    # client.disconnect() queues DISCONNECT and CLOSE, then closes the transport without
    # waiting for them to be written, and python-engineio's _reset() empties its send
    # queue: under load (seen once in a full CI run, never alone) nothing reaches the
    # server and only the heartbeat notices. Each reason is one the client caused.
    client3 = make_client()
    clients.append(client3)
    connect(client3, server, transport)
    sid3 = client3.get_sid()
    client3.disconnect()
    assert reasons.wait(3)[2][0] == sid3
    assert reasons.calls[2][1] in ("client namespace disconnect", "transport close", "ping timeout")
    wait_for(lambda: server.sids() == [], what="no socket left")
    m = server.metrics()
    assert m["connects"] == 3 and m["disconnects"] == 3


def test_namespaces(make_server, clients, transport):
    server = make_server()
    seen = Recorder()
    server.on("connect", lambda sid, auth: seen("connect", auth), namespace="/chat")
    server.on("msg", lambda sid, m: seen("msg", m) or "ok", namespace="/chat")
    server.start()
    inbox = Inbox()
    client = make_client()
    clients.append(client)
    client.on("room-msg", lambda m: inbox.put("room-msg", (m,)), namespace="/chat")
    connect(client, server, transport, auth={"k": 1}, namespaces=["/chat"])
    assert client.call("msg", "hi", namespace="/chat", timeout=WAIT) == "ok"
    sid = client.get_sid("/chat")
    server.enter_room(sid, "lobby", namespace="/chat")
    server.emit("room-msg", "x", to="lobby", namespace="/chat")
    assert inbox.get("room-msg") == ("x",)
    assert seen.wait(2)[:2] == [("connect", {"k": 1}), ("msg", "hi")]
    with pytest.raises(swarmcast.EmitError):
        server.emit("x", namespace="/nowhere")
    with pytest.raises(RuntimeError):
        server.on("late", lambda sid: None, namespace="/late")


def started_with_inbox(make_server, clients, *events: str) -> tuple[swarmcast.Server, Inbox]:
    """A started server and a WebSocket client connected to it, putting `events` in an
    Inbox."""
    server = make_server()
    server.start()
    inbox = Inbox()
    client = make_client(inbox, events)
    clients.append(client)
    connect(client, server, "websocket")
    return server, inbox


def test_conversion_errors_send_nothing(make_server, clients):
    server, inbox = started_with_inbox(make_server, clients, "bad")
    before = server.metrics()["emits"]

    with pytest.raises(TypeError) as e:
        server.emit("bad", {"agents": [0, 1, 2, {"x": {1, 2}}]})
    assert str(e.value) == "data[\"agents\"][3][\"x\"]: object of type 'set' is not JSON serialisable"
    with pytest.raises(TypeError, match=r"data\[1\]: object of type 'object'"):
        server.emit("bad", ("ok", object()))
    with pytest.raises(TypeError, match=r"data: keys must be str, not int"):
        server.emit("bad", {1: "x"})
    with pytest.raises(OverflowError, match=r"data\[0\]"):
        server.emit("bad", [2**64])
    with pytest.raises(ValueError, match=r"data\[\"f\"\]: float NaN"):
        server.emit("bad", {"f": math.nan})
    with pytest.raises(ValueError, match="inf"):
        server.emit("bad", math.inf)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper"):
        server.emit("bad", loop)
    with pytest.raises(swarmcast.EmitError, match="reserved"):
        server.emit("connect", 1)

    assert server.metrics()["emits"] == before
    assert inbox.empty_for(0.3)
    # big ints at the edges of the 64-bit range pass
    server.emit("bad", [-(2**63), 2**64 - 1])
    assert inbox.get("bad") == ([-(2**63), 2**64 - 1],)


def test_json_values_arrive_as_sent(make_server, clients):
    # The emit's JSON writer against Python's own parser at a real client: escapes,
    # non-ASCII, number edges, and subclasses of the built-in types (which take the
    # writer's slower checks).
    class Colour(enum.IntEnum):
        RED = 1

    class Mode(str, enum.Enum):
        FAST = "fast"

    class Key(str):
        pass

    server, inbox = started_with_inbox(make_server, clients, "v")
    controls = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f'
    sent = {
        "controls": controls,
        "unicode": "é \u2028 \u2029 \U0001f600 \ufffd",
        controls: "as a key",
        Key("k"): [True, False, None, Colour.RED, Mode.FAST],
        "ints": [0, -1, 2**53 + 1, -(2**63), 2**64 - 1],
        "floats": [0.1, -0.0, 1e20, 1.5e-7, 2.5, 1e300, 5e-324],
        "nested": collections.OrderedDict(a=(1, [2, {"b": ()}]), c={}),
    }
    server.emit("v", sent)
    expected = {
        **sent,
        "k": [True, False, None, 1, "fast"],
        "nested": {"a": [1, [2, {"b": []}]], "c": {}},
    }
    (got,) = inbox.get("v")
    assert got == expected
    assert [math.copysign(1, x) for x in got["floats"]][1] == -1.0


def test_handler_that_raises_is_logged_and_server_goes_on(make_server, clients, transport, caplog):
    server = make_server()

    @server.on("boom")
    def boom(sid):
        raise RuntimeError("handler bug")

    server.on("ping", lambda sid: "pong")
    server.on("bad-return", lambda sid: {1, 2})
    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, transport)
    with caplog.at_level(logging.ERROR, logger="swarmcast"):
        client.emit("boom")
        assert client.call("ping", timeout=WAIT) == "pong"
        wait_for(lambda: any("boom" in r.getMessage() for r in caplog.records), what="log")
        record = next(r for r in caplog.records if "boom" in r.getMessage())
        assert record.name == "swarmcast"
        assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])
        assert "Traceback" in caplog.text
        # an unconvertible return value is logged; the client's ack gets an error
        assert client.call("bad-return", timeout=WAIT) == {"error": "internal server error"}
        wait_for(lambda: "object of type 'set'" in caplog.text, what="conversion log")
    assert client.call("ping", timeout=WAIT) == "pong"


def test_handler_that_emits_and_handler_that_sleeps(make_server, clients, transport):
    # 4 handler threads, one socket's events in order: a sleeping handler holds up only
    # the sockets that share its thread.
    server = make_server(handler_threads=4)

    @server.on("fanout")
    def fanout(sid, n):
        for i in range(n):
            server.emit("fan", i, to=sid)
        server.emit("fan-done", n)
        return "emitted"

    @server.on("sleep")
    def sleep(sid, seconds):
        time.sleep(seconds)
        return "slept"

    server.on("ping", lambda sid: "pong")
    server.start()

    sleeper = make_client()
    clients.append(sleeper)
    connect(sleeper, server, transport)
    others = []
    for _ in range(8):
        c = make_client()
        clients.append(c)
        others.append(connect(c, server, transport))

    done = threading.Event()
    result: list[Any] = []

    def sleepy() -> None:
        result.append(sleeper.call("sleep", 3, timeout=WAIT))
        done.set()

    threading.Thread(target=sleepy, daemon=True).start()
    time.sleep(0.2)
    # While one handler sleeps, sockets on the other handler threads are served.
    quick = 0
    started = time.monotonic()
    for c in others:
        try:
            if c.call("ping", timeout=0.5) == "pong":
                quick += 1
        except socketio.exceptions.TimeoutError:
            pass
    assert quick >= 1, "every socket waited for the sleeping handler"
    assert time.monotonic() - started < 5
    # Emits from Python threads never wait for handlers.
    t0 = time.monotonic()
    assert server.emit("tick", 1) == 9
    assert time.monotonic() - t0 < 0.5

    # A handler that emits (to its own socket and to all) does not deadlock.
    inbox = Inbox()
    emitter = make_client(inbox, ("fan", "fan-done"), ordered=True)
    clients.append(emitter)
    connect(emitter, server, transport)
    assert emitter.call("fanout", 50, timeout=WAIT) == "emitted"
    assert [inbox.get("fan")[0] for _ in range(50)] == list(range(50))
    assert inbox.get("fan-done") == (50,)

    assert done.wait(WAIT) and result == ["slept"]
    for c in others:
        assert c.call("ping", timeout=WAIT) == "pong"


def test_queue_full_is_reported(make_server, clients):
    # A client that cannot keep up: with the "report" policy the emit raises
    # QueueFullError naming it, and the socket stays connected. emit_max_wait=0: the
    # emit does not wait for the client (backpressure off), so the queue fills at once.
    server = make_server(queue_packets=8, slow_consumer="report", emit_max_wait=0)
    server.start()
    gate = threading.Event()
    client = make_client(ordered=True)
    clients.append(client)
    client.on("block", lambda: gate.wait(WAIT))
    connect(client, server, "websocket")
    sid = client.get_sid()
    server.emit("block")
    with pytest.raises(swarmcast.QueueFullError) as e:
        for i in range(100_000):
            server.emit("x", i, to=sid)
    assert e.value.sids == [sid]
    assert e.value.delivered == 0
    assert isinstance(e.value, swarmcast.EmitError)
    gate.set()
    assert server.metrics()["dropped_queue_full"] >= 1


def test_slow_consumer_is_disconnected_by_default(make_server, clients):
    # The default policy disconnects a client whose queue is full; the emit itself does
    # not raise (the others got the event) and the disconnect handler says why.
    # emit_max_wait=0: no backpressure, so the queue fills at once.
    server = make_server(queue_packets=8, emit_max_wait=0)
    reasons = Recorder()
    server.on("disconnect", lambda sid, reason: reasons(sid, reason))
    server.start()
    gate = threading.Event()
    client = make_client(ordered=True)
    clients.append(client)
    client.on("block", lambda: gate.wait(WAIT))
    connect(client, server, "websocket")
    sid = client.get_sid()
    server.emit("block")
    for i in range(100_000):
        server.emit("x", i)
        if reasons.calls:
            break
    assert reasons.wait()[0] == (sid, "slow consumer")
    gate.set()
    assert server.metrics()["slow_consumers"] == 1
    assert server.sids() == []


def test_lifecycle_and_errors(make_server):
    server = make_server()
    assert not server.running
    assert server.port == 0
    with server:
        assert server.running and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(swarmcast.ServerStartError):
            server.start()
        busy = swarmcast.Server(port=server.port)
        with pytest.raises(swarmcast.ServerStartError, match="bind"):
            busy.start()
    assert not server.running
    server.stop()  # idempotent
    server.start()  # a stopped server starts again (tests/python/test_restart.py)
    assert server.running
    server.stop()
    with pytest.raises(ValueError):
        swarmcast.Server(ping_interval=0)
    with pytest.raises(ValueError):
        swarmcast.Server(transports=["carrier-pigeon"])
    with pytest.raises(TypeError):
        swarmcast.Server(no_such_option=1)
    with pytest.raises(TypeError):
        make_server().on("x", "not callable")
    # emitting before the start is a mistake, said so
    with pytest.raises(swarmcast.NotRunningError):
        swarmcast.Server(port=0).emit("x", 1)


def test_metrics(make_server, clients):
    server = make_server()
    server.start()
    client = make_client()
    clients.append(client)
    connect(client, server, "websocket")
    server.emit("x", "abc")
    m = server.metrics()
    assert set(m) >= {
        "emits",
        "deliveries",
        "bytes_queued",
        "dropped_queue_full",
        "dropped_volatile",
        "connects",
        "disconnects",
        "connects_refused",
    }
    assert m["emits"] >= 1 and m["deliveries"] >= 1 and m["connects"] == 1
    assert all(isinstance(v, int) for v in m.values())
