"""Cost of `Server.emit` from Python (a benchmark, not a test).

    pip install .                      # release build (pip's default for maturin)
    python benches/python_emit.py      # [--events N]

Prints:
  * ns per emit() call with no client connected (conversion + GIL release + fan-out to 0),
  * ns per emit() call with 1 client connected (a python-socketio client over websocket,
    in another process so that it does not compete for this one's GIL),
  * events per second one Python thread emits, and how fast that client receives them,
  * ns per emit() call with N clients connected (`--clients`, default 100: socket.io-client
    connections in one Node process, from tests/js/node_modules), timed over bursts small
    enough that no queue reaches its backpressure watermark: the emit's own cost with
    its fan-out to N queues, not the clients' reading speed;
  * the same two figures for a server made with `emit_in_background=True`, whose emits
    hand the fan-out to a thread of the library, and for both the whole process's CPU
    per emit (every thread: the emit, the handoff, the writers' `write()`s), so that
    what the emitting thread no longer pays is seen to move, not vanish;
  * baselines measured in the same run: `json.dumps` of the same dict in a loop, and in
    bursts after as long an idle wait as the clients' reads took, so that the emit's
    figures read as ratios to what Python itself costs on this host (on shared VMs
    the first call after an idle moment costs tens of µs whatever it does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


# N socket.io-client connections; prints READY once all are connected, then GOT k each
# time every connection has received (k + 1) * burst events, and RECEIVED at the end.
NODE_CLIENTS = textwrap.dedent(
    """
    const { io } = require("socket.io-client");
    const [url, n, burst, bursts] = process.argv.slice(1).map((a, i) => (i ? Number(a) : a));
    let connected = 0, received = 0, reported = -1;
    const sockets = [];
    for (let i = 0; i < n; i++) {
        const s = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
        s.on("connect", () => { if (++connected === n) console.log("READY"); });
        s.on("bench", () => {
            received += 1;
            const k = Math.floor(received / (n * burst)) - 1;
            if (k > reported) { reported = k; console.log("GOT " + k); }
            if (received === n * burst * bursts) { console.log("RECEIVED " + received); sockets.forEach((x) => x.close()); }
        });
        sockets.push(s);
    }
    setTimeout(() => { console.log("TIMEOUT " + received); process.exit(1); }, 120000).unref();
    """
)


def ns_per_call_with_clients(
    server: swarmcast.Server, clients: int, burst: int = 32, bursts: int = 200
) -> tuple[float, float, float, float, float, float] | None:
    """ns per emit() with `clients` Node socket.io-client connections, timed over bursts:
    (wall time, this thread's CPU time) of every call, then this thread's CPU time of
    the first call of each burst and of the others apart, then the process's CPU time
    per emit (all threads) until the clients have it all, and the mean wait for the
    clients between bursts (for `json_dumps_in_bursts`). The first comes after a quiet
    moment, so it writes the event to every idle client's socket itself (write-through:
    the delivery's `write()`s are on this thread); the others queue it for the
    connections' writers. The wall time includes the server's writer threads taking
    this core from the emitting thread (they share it when pinned)."""
    modules = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "js", "node_modules")
    if not os.path.isdir(os.path.join(modules, "socket.io-client")):
        print(f"emit, {clients} clients: skipped (no socket.io-client in {modules}; bash scripts/install-test-deps.sh)")
        return None
    # The clients on the other core when there is one (the benchmarks pin this process
    # to core 0): they read as fast as they can without taking this thread's core.
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    node = subprocess.Popen(
        [*pin, "node", "-e", NODE_CLIENTS, server.url, str(clients), str(burst), str(bursts)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, NODE_PATH=os.path.abspath(modules)),
    )
    assert node.stdout is not None
    try:
        if node.stdout.readline().strip() != "READY":
            raise SystemExit("the Node clients did not connect")
        deadline = time.monotonic() + 10
        while len(server.sids()) < clients and time.monotonic() < deadline:
            time.sleep(0.01)
        data = dict(PAYLOAD)
        emit = server.emit
        total = cpu = first_cpu = process = waited = 0
        for k in range(bursts):
            start_process = time.process_time_ns()
            start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
            data["seq"] = 0
            emit("bench", data)
            first_cpu += time.thread_time_ns() - start_cpu
            for i in range(1, burst):
                data["seq"] = i
                emit("bench", data)
            total += time.perf_counter_ns() - start
            cpu += time.thread_time_ns() - start_cpu
            # Every client has it all before the next burst: queues are empty again.
            wait_start = time.perf_counter_ns()
            while True:
                line = node.stdout.readline()
                if not line or line.strip() == f"GOT {k}" or line.startswith("TIMEOUT"):
                    break
            if not line or line.startswith("TIMEOUT"):
                raise SystemExit(f"the Node clients stopped receiving at burst {k}: {line!r}")
            waited += time.perf_counter_ns() - wait_start
            process += time.process_time_ns() - start_process
        node.wait(timeout=30)
        n = burst * bursts
        return (
            total / n, cpu / n, first_cpu / bursts, (cpu - first_cpu) / (n - bursts), process / n,
            waited / bursts,
        )
    finally:
        if node.poll() is None:
            node.kill()


def json_dumps_in_bursts(burst: int, bursts: int, wait_ns: float) -> tuple[float, float]:
    """This thread's CPU per `json.dumps` of the same dict, in bursts like the emits',
    each after an idle wait as long as the clients' reads took: (first of a burst, the
    rest). The baseline of this run for what a burst after an idle moment costs on this
    host whatever it does (cold caches, a core waking up), so that the emit's figures
    read as ratios, not against a machine's absolute speed."""
    data = dict(PAYLOAD)
    dumps = json.dumps
    first = rest = 0
    for _ in range(bursts):
        time.sleep(wait_ns / 1e9)
        start = time.thread_time_ns()
        data["seq"] = 0
        dumps(data)
        first += time.thread_time_ns() - start
        for i in range(1, burst):
            data["seq"] = i
            dumps(data)
        rest += time.thread_time_ns() - start
    rest -= first
    return first / bursts, rest / (bursts * (burst - 1))


def json_dumps_in_loop(n: int) -> float:
    """ns per `json.dumps` of the dict the emits send, in a loop shaped like theirs."""
    data = dict(PAYLOAD)
    dumps = json.dumps
    start = time.perf_counter_ns()
    for i in range(n):
        data["seq"] = i
        dumps(data)
    return (time.perf_counter_ns() - start) / n


def ns_per_call(server: swarmcast.Server, n: int, clock=time.perf_counter_ns) -> float:
    """ns per emit() call by `clock`: wall time, or `time.thread_time_ns` for this
    thread's CPU."""
    data = dict(PAYLOAD)
    emit = server.emit
    start = clock()
    for i in range(n):
        data["seq"] = i
        emit("bench", data)
    return (clock() - start) / n


def report_many(label: str, args: argparse.Namespace, many: tuple[float, ...] | None, first_what: str, rest_what: str) -> None:
    """Print what ns_per_call_with_clients measured (benches/bench.py parses these lines)."""
    if many is None:
        return
    wall, cpu, first, rest, process, waited = many
    print(
        f"{label}, {args.clients} clients connected: {wall:8.0f} ns/call, {cpu:8.0f} ns of this "
        f"thread's CPU (bursts of {args.burst}, queues drained between)"
    )
    print(
        f"  first of a burst {first_what}: {first:8.0f} ns of CPU/call; "
        f"the other {args.burst - 1}{rest_what}: {rest:8.0f} ns; whole process: {process:8.0f} ns of CPU/emit"
    )
    base_first, base_rest = json_dumps_in_bursts(args.burst, 200, waited)
    print(
        f"  baseline, json.dumps of the same dict in such bursts, each after {waited / 1e6:.2f} ms "
        f"idle: first {base_first:8.0f} ns of CPU/call, then {base_rest:8.0f} ns; "
        f"this emit costs {rest / base_rest:.2f}x json.dumps after the first, {cpu / ((base_first + (args.burst - 1) * base_rest) / args.burst):.2f}x over the burst"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=100, help="the many-clients stage (0: skip it)")
    parser.add_argument("--burst", type=int, default=32, help="emits per burst in the many-clients stage")
    args = parser.parse_args()
    n = args.events

    print(f"swarmcast {swarmcast.__version__}, Python {sys.version.split()[0]}, {n} emits per run")

    # Queues big enough that one run never overflows, and emits that never wait for a
    # client above its backpressure watermark: this measures emit, not policy (with the
    # default wait, the one-client figure below is python-socketio's reading speed).
    server = swarmcast.Server(
        port=0, queue_packets=2 * n + 16, queue_bytes=1 << 30, slow_consumer="report",
        emit_max_wait=0,
    )
    server.start()
    try:
        ns_per_call(server, min(n, 20_000))  # warm up
        best = min(ns_per_call(server, n) for _ in range(3))
        print(f"emit, no client connected:  {best:8.0f} ns/call")
        dumps_ns = min(json_dumps_in_loop(n) for _ in range(3))
        print(f"  baseline, json.dumps of the same dict in a loop: {dumps_ns:8.0f} ns/call (emit: {best / dumps_ns:.2f}x)")

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
        if args.clients > 0:
            many = ns_per_call_with_clients(server, args.clients, burst=args.burst)
            report_many("emit", args, many, "(written through)", " (queued)")
        metrics = server.metrics()
        print(f"server metrics: {metrics}")
    finally:
        server.stop()

    # The same with the fan-out handed to the library's thread.
    background = swarmcast.Server(
        port=0, queue_packets=2 * n + 16, queue_bytes=1 << 30, slow_consumer="report",
        emit_max_wait=0, emit_in_background=True,
    )
    background.start()
    try:
        ns_per_call(background, min(n, 20_000))
        background.flush()
        best = min(ns_per_call(background, n) for _ in range(3))
        background.flush()
        cpu = min(ns_per_call(background, n, time.thread_time_ns) for _ in range(3))
        background.flush()
        print(
            f"emit in background, no client connected: {best:8.0f} ns/call, {cpu:8.0f} ns of this "
            "thread's CPU (the wall time includes the handoff thread's, on the same core)"
        )
        if args.clients > 0:
            many = ns_per_call_with_clients(background, args.clients, burst=args.burst)
            report_many("emit in background", args, many, "(after the idle wait)", "")
    finally:
        background.stop()


if __name__ == "__main__":
    main()
