#!/usr/bin/env python3
"""Runs swarmcast's load benchmarks against swarmcast and its peers in one run.

Called by benches/run.sh (which installs and builds everything first). Each server runs
on core 0 and the load tool (target/release/swarmcast-bench) on core 1 (taskset), one
fresh server process per measurement. Prints one table row per (scenario, server) with
ratios against swarmcast from this same run, writes target/bench/results.json and
target/bench/results.md, and draws the plots into docs/images/.

    python3 benches/bench.py [--quick] [--servers swarmcast,node] [--scenarios latency,fanout]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench"
VENV_PY = OUT / "venv" / "bin" / "python"
LOAD = ROOT / "target" / "release" / "swarmcast-bench"
SERVER_CORE, LOAD_CORE = "0", "1"

# Flask-SocketIO in threading mode last: with thousands of clients it runs thousands of
# threads, and the machine needs a moment after it.
ALL_SERVERS = ["swarmcast", "socketioxide", "node", "flask-gevent", "flask-threading"]
ALL_SCENARIOS = ["floor", "latency", "fanout", "idle", "storm", "idle100k", "batching", "emit", "burst"]


def server_cmd(name: str, port: int, extra: list[str]) -> list[str]:
    if name == "swarmcast":
        return [str(ROOT / "target/release/swarmcast-bench-server"), "--port", str(port), *extra]
    if name == "swarmcast-base":
        # Before/after a change: the bench server of another build (a previous commit,
        # built in its own worktree), e.g. SWARMCAST_BASE_SERVER=/tmp/base/swarmcast-bench-server.
        return [os.environ["SWARMCAST_BASE_SERVER"], "--port", str(port), *extra]
    if name == "socketioxide":
        return [str(OUT / "socketioxide-target/release/socketioxide-bench-server"), "--port", str(port)]
    if name == "node":
        return ["node", str(ROOT / "tools/peers/node/server.js"), "--port", str(port)]
    if name.startswith("flask-"):
        mode = name.split("-", 1)[1]
        py = str(VENV_PY) if VENV_PY.exists() else sys.executable
        return [py, str(ROOT / "tools/peers/flask/server.py"), "--mode", mode, "--port", str(port)]
    raise ValueError(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class ServerProc:
    def __init__(self, name: str, extra: list[str] | None = None):
        self.name = name
        self.port = free_port()
        log = open(OUT / f"server-{name}.log", "ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *server_cmd(name, self.port, extra or [])],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} (see {log.name})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"{name} did not listen within 60 s")
        time.sleep(1.0)  # let it settle (imports, JIT) before the baseline is read

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def load(server: ServerProc, label: str, opts: dict) -> dict:
    cmd = ["taskset", "-c", LOAD_CORE, str(LOAD), "--addr", f"127.0.0.1:{server.port}",
           "--server-pid", str(server.pid), "--label", label]
    for k, v in opts.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    limit = float(opts.get("max_seconds", 300)) + 30
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"failed": f"load tool exceeded {limit} s", "label": label}
    lines = [l for l in p.stdout.strip().splitlines() if l.startswith("{")]
    out = json.loads(lines[-1]) if lines else {"failed": p.stderr.strip()[-500:]}
    out["exit_code"] = p.returncode
    if p.stderr.strip():
        out["stderr"] = p.stderr.strip()[-500:]
    return out


def measure(name: str, label: str, opts: dict, extra: list[str] | None = None, display: str | None = None) -> dict:
    display = display or name
    print(f"  {label:<16} {display:<22}", end="", flush=True)
    try:
        server = ServerProc(name, extra)
    except RuntimeError as e:
        print(f" failed: {e}")
        return {"failed": str(e), "label": label, "server": display}
    try:
        out = load(server, label, opts)
    finally:
        server.stop()
        time.sleep(2)  # let the kernel reap the old connections before the next server
    out["server"] = display
    out["server_args"] = extra or []
    brief = out.get("failed") or ", ".join(
        f"{k}={out[k]:.4g}" if isinstance(out.get(k), float) else f"{k}={out.get(k)}"
        for k in ("connected", "deliveries_per_s", "loss_pct", "rss_per_conn_kib", "exit_code")
        if k in out
    )
    lat = out.get("latency_us")
    if lat:
        brief += f", p50={lat['p50']}us p99={lat['p99']}us"
    print(" " + brief, flush=True)
    return out


def scenarios(quick: bool) -> dict:
    """name -> (servers filter or None, [(label, opts, server extra args)])"""
    q = quick
    lat = dict(rate=20, duration_ms=2000 if q else 10000, payload_bytes=200, drain_ms=3000)
    return {
        "latency": [
            ("latency-100", dict(lat, clients=20 if q else 100, polling=1 if q else 5)),
            ("latency-1000", dict(lat, clients=100 if q else 1000, polling=5 if q else 50)),
            # The same with WebSocket clients only: the polling clients' HTTP round trips
            # make the tail of the rows above (docs/performance.md, write-through).
            ("latency-100-ws", dict(lat, clients=20 if q else 100, polling=0)),
            ("latency-1000-ws", dict(lat, clients=100 if q else 1000, polling=0)),
        ],
        "fanout": [
            ("fanout-1000", dict(rate=0, clients=100 if q else 1000, duration_ms=2000 if q else 10000,
                                 payload_bytes=100, drain_ms=15000, max_seconds=120)),
        ],
        "idle": [
            ("idle-10k", dict(clients=500 if q else 10000, concurrency=500, settle_ms=3000,
                              hold_s=2 if q else 5, connect_timeout_s=120, max_seconds=240)),
        ],
        "storm": [
            ("storm-5k", dict(clients=500 if q else 5000, concurrency=500 if q else 5000,
                              settle_ms=200, connect_timeout_s=60, max_seconds=120)),
        ],
    }


def pct(out: dict, key: str):
    lat = out.get("latency_us") or {}
    return lat.get(key)


def fmt(v, unit="", digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 1e6:
            return f"{v / 1e6:.2f} M{unit}"
        if abs(v) >= 1e4:
            return f"{v / 1e3:.1f} k{unit}"
        return f"{v:.{digits}g}{unit}"
    return f"{v}{unit}"


def key_metric(label: str, out: dict):
    """(name, value, higher_is_better) of a row."""
    if label.startswith("latency"):
        return "p99 µs", pct(out, "p99"), False
    if label.startswith("fanout"):
        return "deliveries/s", out.get("deliveries_per_s"), True
    if label.startswith("idle"):
        return "KiB/conn", out.get("rss_per_conn_kib"), False
    if label.startswith("storm"):
        return "s to connect all", (out.get("connect") or {}).get("all_s"), False
    return "", None, True


def table(results: list[dict]) -> str:
    rows = ["| scenario | server | key metric | vs swarmcast | p50 µs | p99 µs | max µs | deliveries/s | loss | conn | server CPU s | server CPU µs/delivery | load tool CPU | peak RSS MiB | notes |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["label"]: r for r in results if r.get("server") == "swarmcast"}
    for r in results:
        label = r.get("label", "?")
        name, v, higher = key_metric(label, r)
        b = base.get(label)
        ratio = "1.00x" if r.get("server") == "swarmcast" else "n/a"
        if b and r.get("server") != "swarmcast":
            _, bv, _ = key_metric(label, b)
            if v and bv:
                ratio = f"{(bv / v if not higher else v / bv):.2f}x"
        notes = []
        if r.get("failed"):
            notes.append("failed: " + str(r["failed"])[:60])
        for k in ("connect_failed", "disconnects", "protocol_errors"):
            if r.get(k):
                notes.append(f"{k}={r[k]}")
        if r.get("duplicates"):
            notes.append(f"dups={r['duplicates']}")
        drops = (r.get("server_stats") or {}).get("dropped")
        if drops:
            notes.append(f"server dropped {drops}")
        stats = r.get("server_stats") or {}
        wall, cpu = stats.get("emit_wall_us"), stats.get("emit_cpu_us")
        if wall and cpu and wall.get("p99") is not None:
            # swarmcast's producer times its own emits: wall well above CPU on an idle
            # core is the hypervisor's steal (below), which every latency here includes.
            notes.append(f"emit wall p50/p99 {wall['p50'] / 1000:.1f}/{wall['p99'] / 1000:.1f} ms, "
                         f"its CPU {cpu['p50'] / 1000:.1f}/{cpu['p99'] / 1000:.1f} ms")
        if r.get("server_steal_s"):
            notes.append(f"steal {r['server_steal_s']:.2f} s on the server's core")
        polling = r.get("latency_polling_us")
        if polling:
            # The long-polling clients apart: their HTTP round trips make a mixed tail.
            notes.append(f"polling clients p50/p99 {polling['p50']}/{polling['p99']} µs")
        if r.get("load_tool_cpu_pct", 0) > 90:
            # The load tool, not the server, was the limit: the server's CPU per
            # delivered event is the number to compare.
            notes.append(f"load tool saturated ({r['load_tool_cpu_pct']:.0f}% CPU): compare CPU per delivery")
        loss = r.get("loss_pct")
        hwm = r.get("server_hwm_kib")
        rows.append("| " + " | ".join([
            label, r.get("server", "?"), f"{name} {fmt(v)}", ratio,
            fmt(pct(r, "p50")), fmt(pct(r, "p99")), fmt(pct(r, "max")),
            fmt(r.get("deliveries_per_s")), "n/a" if loss is None else f"{loss:.2f}%",
            f"{r.get('connected', 'n/a')}/{r.get('clients', 'n/a')}",
            fmt(r.get("server_cpu_s")), fmt(cpu_per_delivery_us(r)),
            "n/a" if r.get("load_tool_cpu_pct") is None else f"{r['load_tool_cpu_pct']:.0f}%",
            "n/a" if not hwm else f"{hwm / 1024:.0f}",
            "; ".join(notes),
        ]) + " |")
    return "\n".join(rows)


def cpu_per_delivery_us(r: dict):
    """Server CPU per delivered event, in µs (the headline when the load tool saturates)."""
    cpu, received = r.get("server_cpu_s"), r.get("received")
    if not cpu or not received:
        return None
    return 1e6 * cpu / received


def write_floor() -> dict:
    """What one write() to a loopback socket costs the writer on this machine, by frames
    per write: the floor under every server's per-delivery CPU."""
    exe = ROOT / "target" / "release" / "swarmcast-write-floor"
    if not exe.exists():
        return {"failed": f"{exe} missing (cargo build --release -p swarmcast-bench)"}
    # The writer on the server's core, the readers on the load tool's: what a server here
    # pays per write includes waking a reader on the other core.
    p = subprocess.run(["taskset", "-c", SERVER_CORE, str(exe), "--reader-core", LOAD_CORE],
                       capture_output=True, text=True, timeout=300)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"failed": (p.stderr or p.stdout)[-300:]}
    return {"rows": [json.loads(l) for l in lines]}


def floor_table(floor: dict) -> str:
    if floor.get("failed"):
        return "failed: " + floor["failed"]
    rows = [r for r in floor.get("rows", []) if "frames_per_write" in r]
    paced = [r for r in floor.get("rows", []) if "paced_sockets" in r]
    if not rows:
        return "n/a"
    keys = ["frames_per_write", "cpu_us_per_write", "cpu_us_per_delivery", "wall_us_per_write"]
    out = ["| frames per write() | writer CPU µs per write | CPU µs per delivery | wall µs per write |",
           "|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(k)) if isinstance(r.get(k), float) else str(r.get(k)) for k in keys) + " |")
    if paced:
        out += ["", "Paced as the latency rows are (one write per socket per round, rounds after a quiet "
                "moment): each round's time, and each frame's latency as the reader sees it (from its "
                "round's start): what a server doing nothing but these writes would show in the latency rows.", "",
                "| sockets | rounds/s | round wall ms p50 / p99 | round CPU ms p50 / p99 | delivery ms p50 / p99 |",
                "|---|---|---|---|---|"]
        for r in paced:
            out.append(f"| {r['paced_sockets']} | {r['paced_hz']} | {fmt(r['round_wall_ms_p50'])} / "
                       f"{fmt(r['round_wall_ms_p99'])} | {fmt(r['round_cpu_ms_p50'])} / {fmt(r['round_cpu_ms_p99'])} | "
                       f"{fmt(r.get('delivery_ms_p50'))} / {fmt(r.get('delivery_ms_p99'))} |")
    return "\n".join(out)


def against_floor(results: list[dict], floor: dict) -> str:
    """swarmcast's p99 at 20 broadcasts/s against the floor for as many writes: the
    back-to-back CPU per write times the clients (issue 14's measure), the p99 of a
    paced round of as many writes (the floor's own tail at that pace), and the p99 of
    the floor's deliveries as its reader sees them (the latency rows' own measure, for a
    server that does nothing but the writes)."""
    rows = floor.get("rows", [])
    per_write = next((r["cpu_us_per_write"] for r in rows if r.get("frames_per_write") == 1), None)
    paced = {r["paced_sockets"]: r for r in rows if "paced_sockets" in r}
    out = ["| row | swarmcast p99 ms | floor: n x CPU per write (ms) | p99 / that | "
           "floor: paced round wall p99 (ms) | p99 / that | floor: delivery p99 (ms) | p99 / that |",
           "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.get("server") != "swarmcast" or not r.get("label", "").startswith("latency"):
            continue
        p99, n = pct(r, "p99"), r.get("clients")
        if p99 is None or not n:
            continue
        p99_ms = p99 / 1000
        by_cpu = per_write * n / 1000 if per_write else None
        by_round = paced.get(n, {}).get("round_wall_ms_p99")
        by_delivery = paced.get(n, {}).get("delivery_ms_p99")
        ratio = lambda f: f"{p99_ms / f:.2f}x" if f else "n/a"
        out.append(f"| {r['label']} | {p99_ms:.2f} | {fmt(by_cpu)} | {ratio(by_cpu)} | "
                   f"{fmt(by_round)} | {ratio(by_round)} | {fmt(by_delivery)} | {ratio(by_delivery)} |")
    return "\n".join(out) if len(out) > 2 else ""


def polling_burst(quick: bool) -> dict:
    py = python_with_swarmcast()
    if py is None:
        return {"failed": "no Python with swarmcast and python-socketio (bash scripts/install-test-deps.sh)"}
    args = [py, str(ROOT / "benches" / "polling_burst.py")] + (["--each", "200"] if quick else [])
    try:
        p = subprocess.run(["taskset", "-c", SERVER_CORE] + args, capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"failed": "timed out", "exit_code": 1}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    out = json.loads(lines[-1]) if lines else {"failed": p.stderr[-300:]}
    out["exit_code"] = p.returncode
    out["python_build"] = python_build(py)
    print("  polling burst:", json.dumps(out), flush=True)
    return out


def batching(quick: bool) -> list[dict]:
    rates = [100, 1000, 10000] if quick else [100, 1000, 5000, 10000, 20000, 50000]
    configs = {"coalescing (batch_window 0)": [], "no coalescing (max_batch 1)": ["--max-batch", "1"]}
    out = []
    for cname, extra in configs.items():
        for rate in rates:
            label = f"batch-{rate}"
            r = measure("swarmcast", label, dict(rate=rate, clients=100, duration_ms=2000 if quick else 5000,
                                                 payload_bytes=200, drain_ms=5000), extra)
            before = ((r.get("server_stats_before") or {}).get("metrics")) or {}
            after = ((r.get("server_stats") or {}).get("metrics")) or {}
            flushes = after.get("flushes", 0) - before.get("flushes", 0)
            frames = after.get("frames_out", 0) - before.get("frames_out", 0)
            r["config"] = cname
            r["flushes"] = flushes
            r["frames_out"] = frames
            r["flushes_per_event"] = flushes / frames if frames else None
            out.append(r)
    return out


def batching_table(rows: list[dict]) -> str:
    t = ["| config | target rate/s | achieved emits/s | deliveries/s | flushes per delivered event | p50 µs | p99 µs | loss | server CPU s |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fpe = r.get("flushes_per_event")
        t.append("| " + " | ".join([
            r["config"], str(r.get("rate")), fmt(r.get("emits_per_s")), fmt(r.get("deliveries_per_s")),
            "n/a" if fpe is None else f"{fpe:.3f}", fmt(pct(r, "p50")), fmt(pct(r, "p99")),
            "n/a" if r.get("loss_pct") is None else f"{r['loss_pct']:.2f}%", fmt(r.get("server_cpu_s")),
        ]) + " |")
    return "\n".join(t)


def emit_costs() -> dict:
    res: dict = {}
    p = subprocess.run(["taskset", "-c", SERVER_CORE, str(ROOT / "target/release/swarmcast-emit-cost"), "1000"],
                       capture_output=True, text=True, timeout=120)
    try:
        res.update(json.loads(p.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        res["rust_error"] = p.stderr[-300:]
    py_script = ROOT / "benches" / "python_emit.py"
    py = python_with_swarmcast() if py_script.exists() else None
    if not py_script.exists():
        res["python_output"] = "n/a (benches/python_emit.py does not exist)"
    elif py is None:
        res["python_output"] = "n/a (no Python with the swarmcast package: pip install . first)"
    else:
        try:
            p = subprocess.run(["taskset", "-c", SERVER_CORE, py, str(py_script), "--events", "200000"],
                               capture_output=True, text=True, timeout=600, cwd=ROOT)
            res["python_output"] = (p.stdout.strip() + "\n" + p.stderr.strip()[-500:]).strip()
            res["python_exit_code"] = p.returncode
            res["python_interpreter"] = py
            res["python_build"] = python_build(py)
            for key, pat in (("python_emit_ns_0_clients", r"no client connected:\s*([\d.]+) ns"),
                             ("python_emit_ns_1_client", r"1 client connected:\s*([\d.]+) ns"),
                             ("python_emit_ns_100_clients", r"100 clients connected:\s*[\d.]+ ns/call,\s*([\d.]+) ns of this"),
                             # The same calls apart: the first of each burst writes through
                             # to the idle clients, the rest queue (python_emit.py).
                             ("python_emit_ns_100_first", r"first of a burst \(written through\):\s*([\d.]+) ns"),
                             ("python_emit_ns_100_queued", r"the other 31 \(queued\):\s*([\d.]+) ns"),
                             # Server(emit_in_background=True): the fan-out on the library's
                             # thread; the caller's CPU, and the whole process's per emit.
                             ("python_emit_bg_ns_0_clients", r"emit in background, no client connected:\s*[\d.]+ ns/call,\s*([\d.]+) ns of this"),
                             ("python_emit_bg_ns_100_clients", r"emit in background, 100 clients connected:\s*[\d.]+ ns/call,\s*([\d.]+) ns of this"),
                             ("python_emit_bg_ns_100_rest", r"the other 31:\s*([\d.]+) ns"),
                             ("python_emit_ns_100_process", r"the other 31 \(queued\):.*whole process:\s*([\d.]+) ns"),
                             ("python_emit_bg_ns_100_process", r"the other 31:.*whole process:\s*([\d.]+) ns")):
                m = re.search(pat, p.stdout)
                if m:
                    res[key] = float(m.group(1))
            # The run's own baselines: json.dumps of the same dict in a loop, and in the
            # same bursts after as long an idle wait (default stage first, background second).
            m = re.search(r"json\.dumps of the same dict in a loop:\s*([\d.]+) ns", p.stdout)
            if m:
                res["python_json_dumps_ns_loop"] = float(m.group(1))
            bursts = re.findall(r"json\.dumps of the same dict in such bursts.*?then\s*([\d.]+) ns; "
                                r"this emit costs ([\d.]+)x json\.dumps after the first, ([\d.]+)x over the burst",
                                p.stdout)
            for prefix, found in zip(("python_emit", "python_emit_bg"), bursts):
                res[f"{prefix}_json_dumps_ns_100_rest"] = float(found[0])
                res[f"{prefix}_vs_json_dumps_100_rest"] = float(found[1])
                res[f"{prefix}_vs_json_dumps_100_burst"] = float(found[2])
        except subprocess.TimeoutExpired:
            res["python_output"] = "timed out"
    res["c"] = c_emit()
    return res


def python_with_swarmcast() -> str | None:
    """A Python that imports swarmcast and socketio, for the Python stages: the bench
    venv, where benches/run.sh installs a release wheel it builds (so that the figures are
    a release build's), else the newest wheel in target/wheels installed there, else
    the project's .venv (scripts/python-env.sh: the tests' dev-profile build, several
    times slower), else the python3 on PATH. `python_build()` says which it was."""
    def ok(py: str) -> bool:
        try:
            return subprocess.run([py, "-c", "import swarmcast, socketio"], capture_output=True,
                                  timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    if VENV_PY.exists() and ok(str(VENV_PY)):
        return str(VENV_PY)
    wheels = sorted((ROOT / "target" / "wheels").glob("swarmcast-*.whl"), key=lambda w: w.stat().st_mtime)
    if VENV_PY.exists() and wheels:
        subprocess.run([str(VENV_PY), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
                        str(wheels[-1])], capture_output=True, timeout=300)
        if ok(str(VENV_PY)):
            return str(VENV_PY)
    project = ROOT / ".venv" / "bin" / "python"
    if project.exists() and ok(str(project)):
        return str(project)
    system = shutil.which("python3")
    return system if system and ok(system) else None


def python_build(py: str) -> str:
    """What `python_with_swarmcast()` found: the benches' release wheel or something else."""
    if py == str(VENV_PY):
        return "release wheel (bench venv)"
    if py == str(ROOT / ".venv" / "bin" / "python"):
        return "dev profile (.venv: the tests' build, not representative)"
    return f"whatever {py} imports"


def c_emit() -> dict | str:
    if not (ROOT / "bindings" / "c" / "Cargo.toml").exists():
        return "n/a (no bindings/c)"
    p = subprocess.run(["cargo", "build", "--release", "-p", "swarmcast-c"], cwd=ROOT, capture_output=True, text=True)
    lib = ROOT / "target" / "release" / "libswarmcast.a"
    if p.returncode != 0 or not lib.exists():
        return "n/a (bindings/c does not build: " + p.stderr.strip()[-200:] + ")"
    exe = OUT / "c_emit"
    cc = shutil.which("cc") or "gcc"
    p = subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", str(ROOT / "benches" / "c_emit.c"),
                        "-I", str(ROOT / "include"), str(lib), "-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-o", str(exe)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "n/a (c_emit.c does not compile: " + p.stderr.strip()[-300:] + ")"
    p = subprocess.run(["taskset", "-c", SERVER_CORE, str(exe)], capture_output=True, text=True, timeout=120)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return "n/a (c_emit failed: " + (p.stderr or p.stdout)[-200:] + ")"


def machine() -> dict:
    def cmd(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), "n/a")
    mem = next((l.split(":", 1)[1].strip() for l in Path("/proc/meminfo").read_text().splitlines()
                if l.startswith("MemTotal")), "n/a")
    return {
        "nproc": os.cpu_count(), "model": model, "mem_total": mem, "kernel": platform.release(),
        "rustc": cmd("rustc", "--version"), "node": cmd("node", "--version"),
        "python": cmd(str(VENV_PY) if VENV_PY.exists() else sys.executable, "--version"),
        "nofile_hard": cmd("sh", "-c", "ulimit -Hn"),
    }


def wait_quiet(max_minutes: float, threshold: float) -> list[float]:
    """Wait until the 1-minute load average stays under `threshold` for a minute."""
    seen = []
    deadline = time.monotonic() + max_minutes * 60
    quiet_since = None
    while time.monotonic() < deadline:
        la = loadavg()
        seen.append(la)
        if la < threshold:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 60:
                break
        else:
            quiet_since = None
        time.sleep(5)
    return seen


def plots(results: list[dict], batch: list[dict]) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots")
        return []
    img = ROOT / "docs" / "images"
    img.mkdir(parents=True, exist_ok=True)
    made = []
    servers = [s for s in ALL_SERVERS if any(r.get("server") == s for r in results)]

    lat = [l for l in ("latency-100", "latency-1000") if any(r.get("label") == l for r in results)]
    if lat:
        fig, axes = plt.subplots(1, len(lat), figsize=(6 * len(lat), 4), squeeze=False)
        for ax, label in zip(axes[0], lat):
            rows = {r["server"]: r for r in results if r.get("label") == label}
            xs = [s for s in servers if s in rows and rows[s].get("latency_us")]
            for i, q in enumerate(("p50", "p90", "p99")):
                ax.bar([x + (i - 1) * 0.27 for x in range(len(xs))],
                       [max(rows[s]["latency_us"][q], 1) / 1000 for s in xs], 0.27, label=q)
            ax.set_xticks(range(len(xs)), xs, rotation=20)
            ax.set_yscale("log")
            target_ms = {"latency-100": 1, "latency-1000": 5}.get(label)
            if target_ms:
                ax.axhline(target_ms, color="red", linestyle="--", linewidth=1, label=f"p99 target {target_ms} ms")
            ax.set_ylabel("emit-to-receive latency (ms, log)")
            ax.set_title(f"{label}: 20 broadcasts/s, 200 B")
            ax.legend()
        fig.tight_layout()
        fig.savefig(img / "latency.png", dpi=110)
        plt.close(fig)
        made.append("docs/images/latency.png")

    fan = {r["server"]: r for r in results if r.get("label") == "fanout-1000" and r.get("deliveries_per_s")}
    if fan:
        xs = list(fan)
        fig, ax = plt.subplots(figsize=(8, 4.2))
        bars = ax.bar(range(len(xs)), [fan[s]["deliveries_per_s"] / 1e6 for s in xs], color="tab:blue")
        ax.set_xticks(range(len(xs)), [x.replace(" (", "\n(") for x in xs], fontsize=8)
        for b, s in zip(bars, xs):
            ax.annotate(f"loss {fan[s].get('loss_pct', 0):.1f}%\np99 {fan[s]['latency_us']['p99'] / 1000:.0f} ms",
                        (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("deliveries per second (millions)")
        ax.set_title("fan-out to 1,000 clients, server on one core")
        ax.margins(y=0.25)
        fig.tight_layout()
        fig.savefig(img / "fanout.png", dpi=110)
        plt.close(fig)
        made.append("docs/images/fanout.png")

    idle = {r["server"]: r for r in results if r.get("label") == "idle-10k" and r.get("rss_per_conn_kib")}
    if idle:
        xs = [s for s in servers if s in idle]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(xs, [idle[s]["rss_per_conn_kib"] for s in xs], color="tab:green")
        ax.axhline(8, color="red", linestyle="--", label="target 8 KiB")
        ax.set_ylabel("server RSS per idle WebSocket connection (KiB)")
        ax.set_title("10,000 idle WebSocket connections")
        ax.legend()
        fig.tight_layout()
        fig.savefig(img / "idle_memory.png", dpi=110)
        plt.close(fig)
        made.append("docs/images/idle_memory.png")

    if batch:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for cname in dict.fromkeys(r["config"] for r in batch):
            rows = [r for r in batch if r["config"] == cname and r.get("flushes_per_event") is not None]
            a1.plot([r["rate"] for r in rows], [r["flushes_per_event"] for r in rows], marker="o", label=cname)
            a2.plot([r["rate"] for r in rows], [max(pct(r, "p50") or 1, 1) / 1000 for r in rows], marker="o", label=cname)
            for r in rows:
                if r.get("loss_pct"):
                    a2.annotate(f"{r['loss_pct']:.0f}% lost", (r["rate"], max(pct(r, "p50") or 1, 1) / 1000),
                                textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        a1.set_xscale("log")
        a1.set_yscale("log")
        a1.set_xlabel("broadcasts per second to 100 clients")
        a1.set_ylabel("flushes per delivered event")
        a1.legend()
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("broadcasts per second to 100 clients")
        a2.set_ylabel("p50 latency (ms, log)")
        a2.legend()
        fig.suptitle("write coalescing: swarmcast, batch_window 0 vs max_batch 1")
        fig.tight_layout()
        fig.savefig(img / "batching.png", dpi=110)
        plt.close(fig)
        made.append("docs/images/batching.png")
    return made


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small N, short runs (smoke test)")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS))
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="MINUTES",
                    help="first wait up to MINUTES for a 1-minute load average under 0.5 for a minute")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--plots-only", action="store_true", help="redraw the plots from target/bench/results.json")
    a = ap.parse_args()
    if a.plots_only:
        saved = json.loads((OUT / "results.json").read_text())
        print("plots:", ", ".join(plots(saved["results"], saved.get("batching", []))))
        return 0
    servers = [s for s in a.servers.split(",") if s]
    wanted = [s for s in a.scenarios.split(",") if s]
    OUT.mkdir(parents=True, exist_ok=True)

    report: dict = {"machine": machine(), "quick": a.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if a.wait_quiet:
        print(f"waiting up to {a.wait_quiet} min for a quiet machine (load < 0.5 for 60 s)...", flush=True)
        report["load_while_waiting"] = wait_quiet(a.wait_quiet, 0.5)
    report["load_at_start"] = Path("/proc/loadavg").read_text().strip()
    print(f"load average at start: {report['load_at_start']}", flush=True)

    results: list[dict] = []
    for group, runs in scenarios(a.quick).items():
        if group not in wanted:
            continue
        for label, opts in runs:
            for name in servers:
                results.append(measure(name, label, opts))
                if group == "fanout" and name == "swarmcast":
                    # The producer's bound on queued-but-unwritten packets trades latency
                    # for batching: the default (16 per client) aims at the p99 target,
                    # 64 shows the throughput with more coalescing.
                    results.append(measure(name, label, opts, ["--backlog-per-client", "64"],
                                           display="swarmcast (backlog 64)"))
                    # No throttle at all: the producer emits back to back and the
                    # library's backpressure paces it (issue 14).
                    results.append(measure(name, label, opts, ["--backlog-per-client", "0"],
                                           display="swarmcast (back to back)"))
    if "idle100k" in wanted and "swarmcast" in servers:
        n = 2000 if a.quick else 100000
        results.append(measure("swarmcast", "idle-100k", dict(
            clients=n, concurrency=1000, settle_ms=3000, hold_s=5, connect_timeout_s=30,
            src_addrs=16, max_seconds=240)))
    floor = write_floor() if "floor" in wanted else {}
    burst = polling_burst(a.quick) if "burst" in wanted and "swarmcast" in servers else {}
    batch = batching(a.quick) if "batching" in wanted and "swarmcast" in servers else []
    emit = emit_costs() if "emit" in wanted else {}
    report["load_at_end"] = Path("/proc/loadavg").read_text().strip()

    report["results"] = results
    report["batching"] = batch
    report["emit"] = emit
    report["write_floor"] = floor
    report["polling_burst"] = burst
    md = []
    if floor:
        md += ["## The kernel's floor (swarmcast-write-floor, this machine, this run)", "",
               "One thread writes to 1,000 loopback sockets that one other thread reads (epoll, "
               "as the load tool reads).", "", floor_table(floor), ""]
    if results:
        md += ["## Scenarios", "", table(results), ""]
        compared = against_floor(results, floor) if floor else ""
        if compared:
            md += ["## Latency at 20 broadcasts/s against the floor", "", compared, ""]
    if burst:
        md += ["## Polling burst (8 threads x 2,000 events to one python-socketio polling client)",
               "", "```", json.dumps(burst, indent=1), "```", ""]
    if batch:
        md += ["## Batching (issue 3)", "", batching_table(batch), ""]
    if emit:
        md += ["## Emit cost", "", "```", json.dumps(emit, indent=1), "```", ""]
    md += [f"load average at start: {report['load_at_start']}; at end: {report['load_at_end']}"]
    text = "\n".join(md)
    print("\n" + text)
    (OUT / "results.json").write_text(json.dumps(report, indent=1))
    (OUT / "results.md").write_text(text + "\n")
    if not a.no_plots:
        report["plots"] = plots(results, batch)
        print("plots:", ", ".join(report["plots"]))
    print(f"wrote {OUT / 'results.json'}")
    failed = [r for r in results + batch if r.get("exit_code") not in (0, None) or r.get("failed")]
    if burst and burst.get("exit_code") not in (0, None):
        failed.append(burst)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
