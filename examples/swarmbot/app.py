"""SwarmBot: a swarm of agents coordinated live, on a Dash dashboard pushed by swarmcast.

    python examples/swarmbot/app.py            # Dash on 127.0.0.1:8050, swarmcast on :5000

(`bash scripts/demo.sh` installs what it needs first.) Ctrl-C stops the agents, the
swarmcast server and Dash. `--test-control` adds the endpoints the browser tests drive
(tests/e2e): never on a server others can reach.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import swarmcast  # noqa: E402
from swarmcast.dash import Bridge  # noqa: E402

from coordinator import SwarmCoordinator  # noqa: E402
from dashboard import create_app  # noqa: E402

log = logging.getLogger("swarmbot")


class SwarmcastSink:
    """Coordinator changes -> swarmcast: keyed state `agents` and `tasks`, events
    `activity` and `metrics` (through the Bridge, so pages that were away catch up)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.agents = bridge.state("agents")
        self.tasks = bridge.state("tasks")

    def agent(self, agent_id: str, value: Dict[str, Any]) -> None:
        self.agents.set(agent_id, value)

    def task(self, task_id: str, value: Optional[Dict[str, Any]]) -> None:
        if value is None:
            self.tasks.delete(task_id)
        else:
            self.tasks.set(task_id, value)

    def activity(self, entry: Dict[str, Any]) -> None:
        self.bridge.emit("activity", entry)

    def metrics(self, sample: Dict[str, Any]) -> None:
        self.bridge.emit("metrics", sample)


class RealtimeServer:
    """The swarmcast server beside Dash. A stopped `swarmcast.Server` cannot start again,
    so a restart builds a new one and the Bridge re-seeds its state maps."""

    def __init__(self, bridge: Bridge, host: str, port: int, origins: List[str], transports: Optional[List[str]]) -> None:
        self.bridge = bridge
        self.host = host
        self.port = port
        self.origins = origins
        self.transports = transports
        self.server: Optional[swarmcast.Server] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            server = self.server
            if server is None:
                server = self.server = swarmcast.Server(
                    host=self.host,
                    port=self.port,
                    cors_allowed_origins=self.origins,  # CORS and the WebSocket Origin check
                    allow_subscribe=["state:agents", "state:tasks"],
                    recovery=True,  # socket.io-client resumes short disconnects
                    transports=self.transports,
                    # The agents' threads hand each emit to the library's thread (about a
                    # microsecond) instead of writing to every open dashboard themselves;
                    # order, catch-up answers and restarts are kept (docs/python.md).
                    emit_in_background=True,
                )
                self.bridge.attach(server)
            if server.running:
                return
            deadline = time.monotonic() + 10
            while True:  # the port may linger for a moment after a restart
                try:
                    server.start()  # the same server again after a stop: state maps kept
                    break
                except swarmcast.ServerStartError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            self.port = server.port

    def stop(self) -> None:
        with self._lock:
            server = self.server
        if server is not None:
            server.stop()

    def restart(self, down: float = 1.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def add_test_control(app: Any, coordinator: SwarmCoordinator, sink: SwarmcastSink, realtime: RealtimeServer) -> None:
    """Endpoints the browser tests drive (POST only, loopback only)."""
    import flask

    server: flask.Flask = app.server

    def ok(**extra: Any) -> Any:
        return flask.jsonify({"ok": True, **extra})

    def arg(name: str, default: float) -> float:
        return float(flask.request.args.get(name, default))

    @server.post("/_swarmbot/test/pause")
    def _pause() -> Any:
        coordinator.pause()
        return ok(idle=coordinator.wait_idle(arg("timeout", 20)))

    @server.post("/_swarmbot/test/resume")
    def _resume() -> Any:
        coordinator.resume()
        return ok()

    @server.post("/_swarmbot/test/probe")
    def _probe() -> Any:
        """`n` state changes of one agent, `interval_ms` apart, each stamped with its emit time."""
        agent = flask.request.args.get("agent", "researcher-1")
        n = int(arg("n", 200))
        interval = arg("interval_ms", 20) / 1000.0
        base = coordinator.agents[agent].view()

        def run() -> None:
            for i in range(n):
                status = "thinking" if i % 2 == 0 else "working"
                value = dict(base, status=status, note=f"probe {i}", probe=i, ts=round(time.time() * 1000, 3))
                sink.agent(agent, value)
                time.sleep(interval)
            time.sleep(0.5)
            sink.agent(agent, coordinator.agents[agent].view())

        threading.Thread(target=run, name="probe", daemon=True).start()
        return ok(n=n)

    @server.post("/_swarmbot/test/burst")
    def _burst() -> Any:
        n = int(arg("n", 200))
        tag = flask.request.args.get("tag", "burst")
        for i in range(n):
            coordinator.log(f"{tag} {i + 1}/{n}", kind="burst", burst=i, tag=tag)
        return ok(n=n)

    @server.post("/_swarmbot/test/set-agent")
    def _set_agent() -> Any:
        agent = flask.request.args.get("agent", "researcher-1")
        status = flask.request.args.get("status", "blocked")
        note = flask.request.args.get("note", "")
        value = dict(coordinator.agents[agent].view(), status=status, note=note, ts=round(time.time() * 1000, 3))
        sink.agent(agent, value)
        return ok(value=value)

    @server.post("/_swarmbot/test/realtime/<action>")
    def _realtime(action: str) -> Any:
        if action == "stop":
            realtime.stop()
        elif action == "start":
            realtime.start()
        elif action == "restart":
            realtime.restart(arg("down", 1.0))
        elif action == "kick":
            rs = realtime.server
            sids = rs.sids() if rs is not None else []
            for sid in sids:
                rs.disconnect(sid)  # type: ignore[union-attr]
            return ok(kicked=len(sids))
        else:
            flask.abort(404)
        return ok()

    @server.get("/_swarmbot/test/view")
    def _view() -> Any:
        return flask.jsonify(coordinator.view())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address of both servers (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="Dash port (default 8050)")
    parser.add_argument("--realtime-port", type=int, default=5000, help="swarmcast port (default 5000)")
    parser.add_argument("--agents-per-role", type=int, default=2)
    parser.add_argument("--task-rate", type=float, default=0.5, help="new tasks per second (default 0.5)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--transports", default=None, help="comma-separated swarmcast transports (default both)")
    parser.add_argument("--client-transports", default=None, help="comma-separated socket.io-client transports (default: its own)")
    parser.add_argument("--test-control", action="store_true", help="add the endpoints tests/e2e drives")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    bridge = Bridge(keep=1000)
    coordinator = SwarmCoordinator(agents_per_role=args.agents_per_role, task_rate=args.task_rate, seed=args.seed)
    sink = SwarmcastSink(bridge)
    coordinator.add_sink(sink)
    dash_origins = [f"http://{h}:{args.port}" for h in {args.host, "127.0.0.1", "localhost"}]
    realtime = RealtimeServer(
        bridge,
        args.host,
        args.realtime_port,
        dash_origins,
        args.transports.split(",") if args.transports else None,
    )
    realtime.start()
    client_transports = args.client_transports.split(",") if args.client_transports else None
    app = create_app(coordinator, bridge, realtime.url, transports=client_transports)
    if args.test_control or os.environ.get("SWARMBOT_TEST_CONTROL") == "1":
        add_test_control(app, coordinator, sink, realtime)
    coordinator.start()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    print(f"SwarmBot dashboard: http://{args.host}:{args.port}/   (swarmcast push server: {realtime.url})", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    try:
        # SWARMBOT_DEV_BUNDLES=1: Dash serves its unminified bundles (for profiling).
        dev_bundles = os.environ.get("SWARMBOT_DEV_BUNDLES") == "1"
        app.run(host=args.host, port=args.port, debug=False, threaded=True, dev_tools_serve_dev_bundles=dev_bundles)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping: agents, swarmcast, Dash", flush=True)
        coordinator.stop(timeout=3.0)
        realtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
