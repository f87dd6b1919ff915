"""Emitting from many Python threads at once while official clients receive: every event
arrives, in per-thread order, and nothing deadlocks (the pytest timeout catches a hang)."""

from __future__ import annotations

import threading
import time

import pytest

import swarmcast
from conftest import connect, make_client, wait_for

THREADS = 8
EVENTS = 10_000


@pytest.mark.timeout(300)
def test_eight_threads_emit_concurrently_in_order(make_server, clients):
    # "report": a client whose queue is full is told about (QueueFullError) instead of
    # being disconnected, and the emitting thread retries that client: backpressure
    # reaches the producer, memory stays bounded, order per thread is kept.
    server = make_server(slow_consumer="report", queue_packets=2048)
    server.start()

    receivers = {}
    for transport in ("websocket", "polling"):
        seen: list[list[int]] = [[] for _ in range(THREADS)]
        client = make_client(ordered=True)  # handlers in wire order
        client.on(
            "seq",
            (lambda seen: lambda data: seen[data["t"]].append(data["i"]))(seen),
        )
        clients.append(client)
        connect(client, server, transport)
        receivers[transport] = seen

    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    retries = [0] * THREADS

    def produce(t: int) -> None:
        try:
            start.wait()
            for i in range(EVENTS):
                data = {"t": t, "i": i}
                try:
                    server.emit("seq", data)
                except swarmcast.QueueFullError as full:
                    pending = list(full.sids)
                    deadline = time.monotonic() + 60
                    while pending:
                        assert time.monotonic() < deadline, "a client stopped reading"
                        time.sleep(0.001)
                        retries[t] += 1
                        still = []
                        for sid in pending:
                            try:
                                server.emit("seq", data, to=sid)
                            except swarmcast.QueueFullError:
                                still.append(sid)
                        pending = still
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    began = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(240)
    assert not any(th.is_alive() for th in threads), "an emitting thread hung"
    assert not errors, errors
    emitted_in = time.monotonic() - began

    for transport, seen in receivers.items():
        wait_for(
            lambda: sum(len(s) for s in seen) >= THREADS * EVENTS,
            timeout=180,
            what=f"{THREADS * EVENTS} events over {transport}",
        )
        for t in range(THREADS):
            assert seen[t] == list(range(EVENTS)), f"thread {t} out of order over {transport}"
    print(
        f"\n{THREADS}x{EVENTS} emits in {emitted_in:.2f}s, "
        f"{sum(retries)} retries after QueueFullError"
    )
