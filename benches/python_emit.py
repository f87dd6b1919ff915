"""Cost of `Server.emit` from Python (a benchmark, not a test).

    pip install .                      # release build (pip's default for maturin)
    python benches/python_emit.py      # [--events N]

Prints:
  * ns per emit() call with no client connected (conversion + GIL release + fan-out to 0),
  * ns per emit() call with 1 client connected (a python-socketio client over websocket,
    in another process so that it does not compete for this one's GIL),
  * events per second one Python thread emits, and how fast that client receives them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

import swarmcast

PAYLOAD = {"seq": 0, "agent": "agent-7", "status": "working", "load": 0.75, "tags": ["a", "b"]}

CLIENT = textwrap.dedent(
    """
    import sys, threading, time
    import socketio, engineio

    class InOrder(engineio.Client):
        def _trigger_event(self, event, *args, **kwargs):
            if event == "message":
                kwargs["run_async"] = False
            return super()._trigger_event(event, *args, **kwargs)

    class Client(socketio.Client):
        def _engineio_client_class(self):
            return InOrder

    url, expected = sys.argv[1], int(sys.argv[2])
    done = threading.Event()
    count = 0
    first = [0.0]

    sio = Client(reconnection=False)

    @sio.on("bench")
    def bench(data):
        global count
        if count == 0:
            first[0] = time.perf_counter()
        count += 1
        if count >= expected:
            done.set()

    sio.connect(url, transports=["websocket"], wait_timeout=10)
    print("READY", flush=True)
    finished = done.wait(300)
    elapsed = time.perf_counter() - first[0]
    print(f"RECEIVED {count} {elapsed:.6f}", flush=True)
    sio.disconnect()
    """
)


def ns_per_call(server: swarmcast.Server, n: int) -> float:
    data = dict(PAYLOAD)
    emit = server.emit
    start = time.perf_counter_ns()
    for i in range(n):
        data["seq"] = i
        emit("bench", data)
    return (time.perf_counter_ns() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    n = args.events

    print(f"swarmcast {swarmcast.__version__}, Python {sys.version.split()[0]}, {n} emits per run")

    # Queues big enough that one run never overflows: this measures emit, not policy.
    server = swarmcast.Server(
        port=0, queue_packets=2 * n + 16, queue_bytes=1 << 30, slow_consumer="report"
    )
    server.start()
    try:
        ns_per_call(server, min(n, 20_000))  # warm up
        best = min(ns_per_call(server, n) for _ in range(3))
        print(f"emit, no client connected:  {best:8.0f} ns/call")

        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, server.url, str(n)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert client.stdout is not None
        line = client.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"client failed: {line!r}")
        deadline = time.monotonic() + 10
        while not server.sids() and time.monotonic() < deadline:
            time.sleep(0.01)

        start = time.perf_counter()
        per_call = ns_per_call(server, n)
        emit_seconds = time.perf_counter() - start
        print(f"emit, 1 client connected:   {per_call:8.0f} ns/call")
        print(f"one Python thread emits:    {n / emit_seconds:8.0f} events/s")

        out, _ = client.communicate(timeout=600)
        received, elapsed = out.split()[-2:]
        print(
            f"the client received {int(received)} events at "
            f"{int(received) / float(elapsed):8.0f} events/s (python-socketio, one process)"
        )
        metrics = server.metrics()
        print(f"server metrics: {metrics}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
