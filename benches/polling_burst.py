"""The polling burst of issue 14: 8 threads emit 2,000 small events each, at once, to one
python-socketio client on long-polling (which takes at most 16 packets per response),
with swarmcast's default configuration. Prints one JSON line: events received, whether
each thread's events arrived complete and in order, disconnects, slow consumers, how
long the emits took (the producers wait for the client: backpressure) and how long
until the last event arrived.

    python benches/polling_burst.py [--threads 8] [--each 2000] [--transport polling]

Needs a Python with swarmcast and python-socketio (the project's .venv)."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import socketio

import swarmcast


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--each", type=int, default=2000)
    ap.add_argument("--transport", default="polling", choices=["polling", "websocket"])
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    port = free_port()
    server = swarmcast.Server(port=port)  # default configuration otherwise
    server.start()
    seen: list[list[int]] = [[] for _ in range(a.threads)]
    done = threading.Event()
    total = a.threads * a.each
    received = [0]
    disconnects: list[str] = []
    lock = threading.Lock()

    client = socketio.Client(reconnection=False)

    @client.on("burst")
    def on_burst(data: dict) -> None:
        with lock:
            seen[data["t"]].append(data["i"])
            received[0] += 1
            if received[0] >= total:
                done.set()

    @client.on("disconnect")
    def on_disconnect(*reason: object) -> None:
        disconnects.append(str(reason))

    client.connect(f"http://127.0.0.1:{port}", transports=[a.transport], wait_timeout=10)
    barrier = threading.Barrier(a.threads + 1)

    def produce(t: int) -> None:
        barrier.wait()
        for i in range(a.each):
            server.emit("burst", {"t": t, "i": i})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(a.threads)]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join(a.timeout)
    emitted_s = time.perf_counter() - t0
    done.wait(a.timeout)
    arrived_s = time.perf_counter() - t0
    in_order = all(s == list(range(a.each)) for s in seen)
    metrics = server.metrics()
    lost_connection = len(disconnects)  # before our own disconnect below
    client.disconnect()
    server.stop()
    print(json.dumps({
        "transport": a.transport,
        "threads": a.threads,
        "each": a.each,
        "received": received[0],
        "expected": total,
        "complete_and_in_order": in_order,
        "disconnects": lost_connection,
        "slow_consumers": metrics.get("slow_consumers"),
        "emits_done_s": round(emitted_s, 3),
        "last_event_s": round(arrived_s, 3),
        "events_per_s": round(received[0] / arrived_s, 1) if arrived_s > 0 else None,
    }))
    return 0 if in_order and received[0] == total and not lost_connection else 1


if __name__ == "__main__":
    raise SystemExit(main())
