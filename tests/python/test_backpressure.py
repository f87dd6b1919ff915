"""Backpressure with the default configuration: a burst far faster than a client can
take arrives complete, in per-thread order, and nobody is disconnected. The emitting
threads wait (GIL released) instead of failing or dropping the client."""

from __future__ import annotations

import threading

import pytest

from conftest import connect, make_client, wait_for

THREADS = 8
EACH = 2_000


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("background", [False, True], ids=["emit", "emit_in_background"])
def test_a_burst_from_eight_threads_arrives_complete_and_in_order(make_server, clients, transport, background):
    # The default configuration, or with the fan-out on the library's thread (emits
    # return None there: handed off, not counted).
    server = make_server(emit_in_background=background)
    server.start()
    seen: list[list[int]] = [[] for _ in range(THREADS)]
    client = make_client(ordered=True)  # handlers in wire order
    client.on("burst", lambda data: seen[data["t"]].append(data["i"]))
    disconnects: list[str] = []
    client.on("disconnect", lambda *reason: disconnects.append(str(reason)))
    clients.append(client)
    connect(client, server, transport)

    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    returned: set[object] = set()

    def produce(t: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                returned.add(server.emit("burst", {"t": t, "i": i}))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "an emitting thread hung"
    assert not errors, errors
    assert returned == ({None} if background else {1})
    assert server.flush(timeout=60), "nothing left in the handoff"
    wait_for(
        lambda: sum(len(s) for s in seen) >= THREADS * EACH,
        timeout=120,
        what=f"{THREADS * EACH} events over {transport}",
    )
    for t in range(THREADS):
        assert seen[t] == list(range(EACH)), f"thread {t}: complete and in order"
    assert not disconnects, disconnects
    assert server.metrics()["slow_consumers"] == 0
