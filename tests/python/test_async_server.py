"""swarmcast.AsyncServer with coroutine handlers, driven by python-socketio's official
AsyncClient over real sockets on 127.0.0.1 (websocket and long-polling)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import socketio

from conftest import Inbox, free_port, make_client, python_script
import swarmcast

WAIT = 10.0


async def eventually(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll `predicate` on the loop until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(params=["websocket", "polling"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[swarmcast.AsyncServer]]]:
    """Make AsyncServers on ephemeral ports: register handlers, then `await start()`
    them; each is stopped at teardown."""
    made: list[swarmcast.AsyncServer] = []

    async def build(**options: Any) -> swarmcast.AsyncServer:
        options.setdefault("port", 0)
        sio = swarmcast.AsyncServer(**options)
        made.append(sio)
        return sio

    yield build
    for sio in made:
        await asyncio.wait_for(sio.stop(), 15)


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Callable[..., Awaitable[socketio.AsyncClient]]]:
    """Connect python-socketio AsyncClients; each is disconnected at teardown."""
    made: list[socketio.AsyncClient] = []

    async def connect(
        sio: swarmcast.AsyncServer,
        transport: str = "websocket",
        setup: Callable[[socketio.AsyncClient], None] | None = None,
        **kwargs: Any,
    ) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        made.append(client)
        if setup is not None:
            setup(client)
        await asyncio.wait_for(
            client.connect(sio.url, transports=[transport], wait_timeout=5, **kwargs), WAIT
        )
        return client

    yield connect
    for client in made:
        try:
            await asyncio.wait_for(client.disconnect(), 5)
        except Exception:  # noqa: BLE001 - best effort teardown
            pass


async def test_connect_with_auth_and_refusal(make_server, clients, transport):
    sio = await make_server()
    seen: list[tuple[str, Any, bool]] = []

    @sio.event
    async def connect(sid: str, auth: Any) -> None:
        await asyncio.sleep(0.01)  # a real suspension inside the connect decision
        seen.append((sid, auth, threading.current_thread() is threading.main_thread()))
        if not auth or auth.get("token") != "secret":
            raise swarmcast.ConnectionRefusedError("unauthorized", {"retry": False})

    await sio.start()
    good = await clients(sio, transport, auth={"token": "secret"})
    assert good.connected and good.get_sid() in sio.server.sids()
    assert seen == [(good.get_sid(), {"token": "secret"}, True)]  # ran on the loop's thread

    errors: list[Any] = []

    def setup(client: socketio.AsyncClient) -> None:
        client.on("connect_error", lambda data: errors.append(data))

    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients(sio, transport, setup=setup, auth={"token": "wrong"})
    assert errors == [{"message": "unauthorized", "data": {"retry": False}}]
    assert len(seen) == 2 and seen[1][1] == {"token": "wrong"}
    assert sio.server.sids() == [good.get_sid()]


async def test_connect_returning_false_refuses_and_connect_without_auth(make_server, clients):
    sio = await make_server()

    @sio.on("connect")
    async def connect(sid: str) -> bool:  # takes no auth: called without it
        await asyncio.sleep(0)
        return False

    await sio.start()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients(sio)
    assert sio.server.sids() == []


async def _acks_over_200(sio: swarmcast.AsyncServer, clients: Any, transport: str) -> tuple[list[int], list[int]]:
    started: list[int] = []

    @sio.on("work")
    async def work(sid: str, i: int) -> int:
        started.append(i)
        await asyncio.sleep(0.002 * (i % 5))  # later events often finish first
        return i * 2

    await sio.start()
    client = await clients(sio, transport)
    acked: list[int] = []
    for i in range(200):
        await client.emit("work", i, callback=lambda value, i=i: acked.append((i, value)))
    await eventually(lambda: len(acked) == 200, 20, "200 acks")
    assert sorted(acked) == [(i, i * 2) for i in range(200)]  # every ack, right value
    return started, [i for i, _ in acked]


async def test_async_acks_200_concurrent(make_server, clients, transport):
    """async_handlers=True (default): handlers start in arrival order (asserted), run
    concurrently, and may answer in any order."""
    sio = await make_server()
    started, ack_order = await _acks_over_200(sio, clients, transport)
    assert started == list(range(200))
    assert sorted(ack_order) == list(range(200))


async def test_async_acks_200_serial(make_server, clients, transport):
    """async_handlers=False: one socket's handlers run one after the other, so acks come
    back in the order the events were sent."""
    sio = await make_server(async_handlers=False)
    started, ack_order = await _acks_over_200(sio, clients, transport)
    assert started == list(range(200))
    assert ack_order == list(range(200))


async def test_concurrent_handlers_overlap(make_server, clients):
    """With async_handlers=True a slow handler does not hold up the next event of the
    same socket (and holds no handler thread): 20 handlers sleeping 1 s each finish
    together, not in 20 s."""
    sio = await make_server(handler_threads=1)
    inside = 0
    peak = 0

    @sio.on("slow")
    async def slow(sid: str) -> str:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(1.0)
        inside -= 1
        return "done"

    await sio.start()
    client = await clients(sio)
    t0 = time.monotonic()
    answers = await asyncio.wait_for(asyncio.gather(*(client.call("slow", timeout=10) for _ in range(20))), 10)
    assert answers == ["done"] * 20
    assert peak == 20
    assert time.monotonic() - t0 < 6.0


async def test_emit_to_room_and_skip_sid(make_server, clients, transport):
    sio = await make_server()

    @sio.on("join")
    async def join(sid: str, room: str) -> list[str]:
        await sio.enter_room(sid, room)
        return sio.rooms(sid)

    await sio.start()
    inboxes: dict[str, list[tuple[str, Any]]] = {"a": [], "b": [], "c": []}

    def recorder(name: str) -> Callable[[socketio.AsyncClient], None]:
        def setup(client: socketio.AsyncClient) -> None:
            client.on("news", lambda data: inboxes[name].append(("news", data)))
            client.on("all", lambda data: inboxes[name].append(("all", data)))

        return setup

    a = await clients(sio, transport, setup=recorder("a"))
    b = await clients(sio, transport, setup=recorder("b"))
    c = await clients(sio, transport, setup=recorder("c"))
    assert await a.call("join", "red", timeout=5) == [a.get_sid(), "red"]
    assert await c.call("join", "red", timeout=5) == [c.get_sid(), "red"]

    assert await sio.emit("news", {"n": 1}, to="red") == 2
    assert await sio.emit("news", {"n": 2}, room="red", skip_sid=c.get_sid()) == 1
    await sio.leave_room(c.get_sid(), "red")
    assert await sio.emit("news", {"n": 3}, to="red") == 1
    assert await sio.emit("all", "end") == 3  # the marker after which nothing more comes
    for name in "abc":
        await eventually(lambda name=name: ("all", "end") in inboxes[name], what=f"{name}'s marker")
    assert inboxes["a"] == [("news", {"n": 1}), ("news", {"n": 2}), ("news", {"n": 3}), ("all", "end")]
    assert inboxes["b"] == [("all", "end")]
    assert inboxes["c"] == [("news", {"n": 1}), ("all", "end")]

    await sio.close_room("red")
    assert await sio.emit("news", {"n": 4}, to="red") == 0
    assert sio.server.rooms(a.get_sid()) == [a.get_sid()]


async def test_call_reply_and_timeout(make_server, clients, transport):
    sio = await make_server()
    await sio.start()

    def setup(client: socketio.AsyncClient) -> None:
        async def add(x: int, y: int) -> int:
            return x + y

        async def slow(_: Any) -> str:
            await asyncio.sleep(3)
            return "late"

        client.on("add", add)
        client.on("slow", slow)
        client.on("pair", lambda: ("a", 1))

    client = await clients(sio, transport, setup=setup)
    sid = client.get_sid()
    assert await sio.call("add", (40, 2), to=sid, timeout=5) == 42
    assert await sio.call("pair", sid=sid, timeout=5) == ("a", 1)

    # The loop keeps running while a call waits: a ticker counts its 10 ms sleeps.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await sio.call("slow", 1, to=sid, timeout=0.5)
    elapsed = time.monotonic() - t0
    tick_task.cancel()
    assert 0.45 < elapsed < 2.0
    assert ticks >= 15  # ~45 if nothing blocked the loop

    with pytest.raises(ValueError):
        await sio.call("add", (1, 2))
    with pytest.raises(swarmcast.DisconnectedError):
        await sio.call("add", (1, 2), to="no-such-sid", timeout=1)


async def test_emit_with_callback(make_server, clients):
    sio = await make_server()
    await sio.start()

    def setup(client: socketio.AsyncClient) -> None:
        client.on("hello", lambda name: f"hi {name}")

    client = await clients(sio, setup=setup)
    got: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
    loop_thread = threading.current_thread()

    async def callback(answer: str) -> None:
        got.set_result((answer, threading.current_thread() is loop_thread))

    assert await sio.emit("hello", "bob", to=client.get_sid(), callback=callback) == 1
    assert await asyncio.wait_for(got, WAIT) == ("hi bob", True)


async def test_disconnect_reasons(make_server, clients, transport):
    sio = await make_server()
    reasons: list[tuple[str, str]] = []

    @sio.event
    async def disconnect(sid: str, reason: str) -> None:
        await asyncio.sleep(0.01)
        reasons.append((sid, reason))

    await sio.start()
    client_reasons: list[Any] = []

    def setup(client: socketio.AsyncClient) -> None:
        client.on("disconnect", lambda reason: client_reasons.append(reason))

    kicked = await clients(sio, transport, setup=setup)
    sid = kicked.get_sid()
    assert await sio.disconnect(sid) is True
    await eventually(lambda: reasons, what="the disconnect handler")
    assert reasons == [(sid, "server namespace disconnect")]
    await eventually(lambda: client_reasons, what="the client's disconnect event")
    assert client_reasons == [kicked.reason.SERVER_DISCONNECT]
    assert await sio.disconnect(sid) is False

    leaving = await clients(sio, transport)
    sid2 = leaving.get_sid()
    await leaving.disconnect()
    await eventually(lambda: len(reasons) == 2, what="the second disconnect")
    # python-engineio may drop the queued DISCONNECT as it closes (see test_server.py).
    assert reasons[1][0] == sid2
    assert reasons[1][1] in ("client namespace disconnect", "transport close")


async def test_disconnect_handler_without_reason(make_server, clients):
    sio = await make_server()
    gone: list[str] = []

    @sio.on("disconnect")
    async def bye(sid: str) -> None:
        gone.append(sid)

    await sio.start()
    client = await clients(sio)
    sid = client.get_sid()
    await sio.disconnect(sid)
    await eventually(lambda: gone == [sid], what="disconnect handler")


async def test_catch_all_event_and_namespace(make_server, clients, transport):
    sio = await make_server()

    @sio.on("known")
    async def known(sid: str) -> str:
        return "known"

    @sio.on("*")
    async def any_event(event: str, sid: str, *args: Any) -> list[Any]:
        await asyncio.sleep(0)
        return [event, *args]

    @sio.on("where", namespace="*")
    async def where(namespace: str, sid: str) -> str:
        return namespace

    await sio.start()
    client = await clients(sio, transport, namespaces=["/", "/chat"])
    assert await client.call("known", timeout=5) == "known"
    assert await client.call("whatever", {"x": 1}, timeout=5) == ["whatever", {"x": 1}]
    assert await client.call("several", (1, "two"), timeout=5) == ["several", 1, "two"]
    assert await client.call("where", namespace="/chat", timeout=5) == "/chat"


async def test_raising_handler_answers_error_ack(make_server, clients, caplog):
    sio = await make_server()

    @sio.on("boom")
    async def boom(sid: str) -> None:
        await asyncio.sleep(0)
        raise ValueError("kaboom")

    @sio.on("unsendable")
    async def unsendable(sid: str) -> object:
        return object()

    @sio.on("fine")
    async def fine(sid: str) -> str:
        return "still here"

    await sio.start()
    client = await clients(sio)
    with caplog.at_level(logging.ERROR, logger="swarmcast"):
        assert await client.call("boom", timeout=5) == {"error": "internal server error"}
        assert await client.call("unsendable", timeout=5) == {"error": "internal server error"}
        # The client and the socket stay usable.
        assert await client.call("fine", timeout=5) == "still here"
    messages = [r.getMessage() for r in caplog.records if r.name == "swarmcast"]
    assert any("boom" in m and client.get_sid() in m for m in messages), messages
    assert any("kaboom" in (r.exc_text or "") or (r.exc_info and "kaboom" in str(r.exc_info[1])) for r in caplog.records)
    assert any("unsendable" in m for m in messages), messages


async def test_sync_handler_on_async_server(make_server, clients, transport):
    sio = await make_server()
    loop_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    @sio.on("sync_echo")
    def sync_echo(sid: str, data: Any) -> Any:
        threads.append(threading.current_thread())
        sio.server.emit("pushed", data, to=sid)  # the blocking native API, from its thread
        return data

    @sio.on("async_echo")
    async def async_echo(sid: str, data: Any) -> Any:
        threads.append(threading.current_thread())
        return data

    await sio.start()
    pushed: list[Any] = []
    client = await clients(sio, transport, setup=lambda c: c.on("pushed", pushed.append))
    assert await client.call("sync_echo", {"a": [1, 2]}, timeout=5) == {"a": [1, 2]}
    assert await client.call("async_echo", "x", timeout=5) == "x"
    assert threads[0] is not loop_thread  # a native handler thread
    assert threads[1] is loop_thread
    await eventually(lambda: pushed == [{"a": [1, 2]}], what="the sync handler's push")


async def test_background_task_sleep_and_binary(make_server, clients):
    sio = await make_server()
    await sio.start()
    got: list[Any] = []
    client = await clients(sio, setup=lambda c: c.on("blob", got.append))

    async def pusher(n: int) -> int:
        for i in range(n):
            await sio.emit("blob", bytes([i]) * 3)
            await sio.sleep(0.01)
        return n

    task = sio.start_background_task(pusher, 3)
    assert await asyncio.wait_for(task, WAIT) == 3
    await eventually(lambda: len(got) == 3, what="3 binary events")
    assert got == [b"\x00\x00\x00", b"\x01\x01\x01", b"\x02\x02\x02"]


async def test_emit_before_start_raises(make_server):
    sio = await make_server()
    with pytest.raises(swarmcast.NotRunningError):
        await sio.emit("x", 1)


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """The AsyncServer's pool, counting what it is handed."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="swarmcast-async")
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.timeout(120)
async def test_emit_under_backpressure_paces_the_task_not_the_loop(make_server):
    """A burst of awaited emits to a long-polling client (16 packets per response, so
    slow to drain): emits are queued on the loop while the client keeps up, and wait on
    the pool once its queue is above the watermark. Everything arrives in order, nobody
    is disconnected, and the loop keeps running meanwhile."""
    sio = await make_server()
    pool = CountingExecutor()
    sio._executor = pool
    await sio.start()
    seen: list[int] = []
    client = make_client(ordered=True)  # handlers in wire order, on the client's threads
    client.on("burst", lambda data: seen.append(data["i"]))
    await asyncio.to_thread(client.connect, sio.url, transports=["polling"], wait_timeout=WAIT)
    try:
        gaps: list[float] = []
        running = True

        async def ticker() -> None:
            last = time.monotonic()
            while running:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        submitted_before = pool.submitted
        n = 2000
        for i in range(n):
            assert await sio.emit("burst", {"i": i}) == 1
        running = False
        await tick
        await eventually(lambda: len(seen) >= n, 60, f"{n} events")
        assert seen == list(range(n))
        assert sio.server.metrics()["slow_consumers"] == 0
        offloaded = pool.submitted - submitted_before
        assert 0 < offloaded < n, offloaded  # some waited on the pool, most did not
        assert max(gaps) < 0.5, max(gaps)  # the loop was never held for long
    finally:
        await asyncio.to_thread(client.disconnect)


def test_own_loop_in_a_thread():
    """start_in_thread(): a sync program gets coroutine handlers on a loop of the
    server's own; a sync python-socketio client drives it."""
    sio = swarmcast.AsyncServer(port=0)
    loops: list[asyncio.AbstractEventLoop] = []

    @sio.on("double")
    async def double(sid: str, x: int) -> int:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        return 2 * x

    with sio:
        assert sio.loop is not None and sio.loop.is_running()
        client = socketio.Client(reconnection=False)
        client.connect(sio.url, transports=["websocket"], wait_timeout=5)
        try:
            assert client.call("double", 21, timeout=5) == 42
            fut = asyncio.run_coroutine_threadsafe(sio.emit("note", "hi"), sio.loop)
            assert fut.result(5) == 1
        finally:
            client.disconnect()
    assert loops == [sio.loop]
    assert not sio.running and sio.loop.is_closed()


async def test_bad_arguments():
    with pytest.raises(TypeError, match="dumps"):
        swarmcast.AsyncServer(json=object())
    with pytest.raises(ValueError):
        swarmcast.AsyncServer(ping_interval=-1)
    sio = swarmcast.AsyncServer(port=0)
    with pytest.raises(TypeError, match="callable"):
        sio.on("x", 42)  # type: ignore[call-overload]


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asgi" / "fastapi_app.py"


def test_fastapi_example_pushes_from_a_route():
    """examples/asgi/fastapi_app.py under uvicorn in a subprocess: its lifespan starts
    the AsyncServer on uvicorn's loop; async routes push to a connected client and ask
    it a question."""
    pytest.importorskip("fastapi")
    http_port, sio_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    with python_script(str(EXAMPLE), "--port", str(http_port), env={"SIO_PORT": str(sio_port)}) as proc:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                r = requests.get(base + "/", timeout=1)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the example did not start"
            time.sleep(0.1)
        info = r.json()
        assert info == {"socketio": f"http://127.0.0.1:{sio_port}", "same_loop": True, "clients": 0}

        got = Inbox()
        client = make_client(got, ("welcome", "notification"))
        client.on("question", lambda text: f"yes: {text}")
        client.connect(info["socketio"], transports=["websocket"], auth={"name": "ann"}, wait_timeout=WAIT)
        try:
            sid = client.get_sid()
            assert got.get("welcome") == ({"sid": sid, "name": "ann"},)
            assert client.call("join", "ops", timeout=WAIT) == [sid, "ops"]

            r = requests.post(base + "/notify", json={"message": "deployed", "room": "ops"}, timeout=WAIT)
            assert r.json() == {"delivered": 1}
            assert got.get("notification") == ({"message": "deployed"},)
            r = requests.post(base + "/notify", json={"message": "nobody", "room": "dev"}, timeout=WAIT)
            assert r.json() == {"delivered": 0}
            r = requests.post(base + "/notify", json={"message": "everyone"}, timeout=WAIT)
            assert r.json() == {"delivered": 1}
            assert got.get("notification") == ({"message": "everyone"},)
            assert got.empty_for(0.2)

            r = requests.post(f"{base}/ask/{sid}", json={"message": "ready?"}, timeout=WAIT)
            assert r.json() == {"answer": "yes: ready?"}
            assert requests.post(f"{base}/ask/nobody", json={"message": "?"}, timeout=WAIT).status_code == 404
            assert requests.get(base + "/", timeout=WAIT).json()["clients"] == 1
        finally:
            client.disconnect()


async def test_emits_in_the_background_arrive_in_order_and_before_a_disconnect(make_server, clients, transport):
    sio = await make_server(emit_in_background=True)
    await sio.start()
    got: list[int] = []
    gone = asyncio.Event()

    def setup(client: socketio.AsyncClient) -> None:
        client.on("n", lambda i: got.append(i))
        client.on("disconnect", lambda *reason: gone.set())

    client = await clients(sio, transport, setup=setup)
    sid = client.get_sid()
    results = [await sio.emit("n", i, to=sid) for i in range(300)]
    assert set(results) == {None}, "handed off: no count"
    await sio.disconnect(sid)
    await asyncio.wait_for(gone.wait(), WAIT)
    assert got == list(range(300))
