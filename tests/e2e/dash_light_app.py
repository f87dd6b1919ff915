"""A light Dash page served two ways, for the browser tests (tests/e2e/dash_light.test.mjs):

- `/?glue=swarmcast`: built as docs/dash.md says, a `swarmcast.dash.Realtime` whose event
  store `tick` feeds one clientside callback;
- `/?glue=plain`: the baseline, the page's own few lines of socket.io-client glue
  (light_assets/plain-glue.js) calling `dash_clientside.set_props` on each event, as a
  Flask-SocketIO + Dash user writes it.

Both render the same thing into `<pre id="out">`: the last 300 events, one line each,
`RUN I TS` (TS: the server's emit time, epoch ms). The Dash app and Socket.IO share one
port (`swarmcast.dash.run`). Test-only endpoints (loopback only) make the server emit:

    POST /_light/ticks?events=tick,ptick&run=TAG&n=300&interval_ms=40  (in a thread: each
         event name every interval_ms, in turns; run RUN-EVENT)
    POST /_light/burst?event=tick|ptick&run=TAG&n=200                  (all at once)
    POST /_light/catchup-delay?ms=1000     (the Bridge's catch-up answers that much later)
    GET  /_light/status                                                 (epoch, emitting)

`--startup-events N --run TAG` emits N `tick` events through the Bridge as the process
starts (before any page is connected): the epoch test restarts the whole process.
`LIGHT_DEV_BUNDLES=1` serves Dash's unminified bundles (to profile the page).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import urllib.parse
from typing import Any, Dict, List

import flask
import swarmcast
from dash import Dash, Input, Output, dcc, html
from swarmcast.dash import Bridge, Realtime, run

HERE = os.path.dirname(os.path.abspath(__file__))
SHOWN = 300  # lines in <pre id="out">

# The same renderer for both pages: the last SHOWN events, oldest first.
RENDER = """function (events) {
    events = events || [];
    var out = [];
    for (var i = Math.max(0, events.length - %d); i < events.length; i++) {
        var d = events[i];
        out.push(d.run + " " + d.i + " " + d.ts);
    }
    return out.join("\\n");
}""" % SHOWN


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--startup-events", type=int, default=0)
    parser.add_argument("--run", default="start")
    args = parser.parse_args()

    server = swarmcast.Server(host="127.0.0.1", port=args.port, recovery=True)
    app = Dash(
        __name__,
        title="swarmcast light page",
        update_title=None,
        assets_folder=os.path.join(HERE, "light_assets"),
        suppress_callback_exceptions=True,
    )
    # Each page on a namespace of its own, so that one gets none of the other's events
    # while both are open: the test sends their ticks in turns, half an interval apart.
    bridge = Bridge(server, app, namespace="/sc")
    server.on("connect", lambda *a: True, namespace="/plain")
    rt = Realtime("rt", events=["tick"], buffer=500, namespace="/sc")
    # The Bridge's catch-up answer, late by `catchup_delay[0]` seconds when a test asks
    # (POST /_light/catchup-delay): a burst can then reach a page before it.
    catchup_delay = [0.0]

    def late_catch_up(sid: str, query: Any = None, *rest: Any) -> Any:
        if catchup_delay[0] > 0:
            time.sleep(catchup_delay[0])
        return bridge._catch_up(sid, query, *rest)

    server.on("swarmcast:catchup", late_catch_up, namespace="/sc")

    def layout() -> Any:
        # Dash asks for the layout in a request of its own (/_dash-layout): the page's
        # ?glue= is in its Referer.
        glue = "swarmcast"
        if flask.has_request_context():
            page = urllib.parse.urlparse(flask.request.referrer or "")
            glue = urllib.parse.parse_qs(page.query).get("glue", ["swarmcast"])[0]
        if glue == "plain":
            return html.Div([dcc.Store(id="plain-store", data=[]), html.Pre(id="out")])
        return html.Div([rt, rt.indicator(), html.Pre(id="out")])

    app.layout = layout
    app.clientside_callback(
        "function (store) { return (%s)((store && store.events || []).map(function (e) { return e.data; })); }" % RENDER,
        Output("out", "children", allow_duplicate=True),
        Input(rt.event_store("tick"), "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        RENDER,
        Output("out", "children", allow_duplicate=True),
        Input("plain-store", "data"),
        prevent_initial_call=True,
    )

    emitting = threading.Event()

    def emit(event: str, run_tag: str, i: int) -> None:
        payload: Dict[str, Any] = {"run": run_tag, "i": i, "ts": time.time() * 1000.0}
        if event == "tick":
            bridge.emit("tick", payload)
        else:
            server.emit(event, payload, namespace="/plain")

    def ticks(events: List[str], run_tag: str, n: int, interval: float) -> None:
        try:
            start = time.monotonic()
            for i in range(n):
                for k, event in enumerate(events):
                    delay = start + (i + k / len(events)) * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    emit(event, f"{run_tag}-{event}", i)
        finally:
            emitting.clear()

    def check_event(event: str) -> str:
        if event not in ("tick", "ptick"):
            flask.abort(400)
        return event

    @app.server.post("/_light/ticks")
    def _ticks() -> Any:
        q = flask.request.args
        events = [check_event(e) for e in q.get("events", "tick").split(",")]
        n = min(int(q.get("n", 150)), 5000)
        interval = float(q.get("interval_ms", 40)) / 1000.0
        if emitting.is_set():
            return flask.jsonify({"error": "already emitting"}), 409
        emitting.set()
        threading.Thread(target=ticks, args=(events, q.get("run", "ticks"), n, interval), daemon=True).start()
        return flask.jsonify({"ok": True, "n": n})

    @app.server.post("/_light/catchup-delay")
    def _catchup_delay() -> Any:
        catchup_delay[0] = min(float(flask.request.args.get("ms", 0)), 10_000) / 1000.0
        return flask.jsonify({"ok": True})

    @app.server.post("/_light/burst")
    def _burst() -> Any:
        q = flask.request.args
        event = check_event(q.get("event", "tick"))
        n = min(int(q.get("n", 200)), 5000)
        run_tag = q.get("run", "burst")
        for i in range(n):
            emit(event, run_tag, i)
        return flask.jsonify({"ok": True, "n": n})

    @app.server.get("/_light/status")
    def _status() -> Any:
        return flask.jsonify({"epoch": bridge.epoch, "emitting": emitting.is_set(), "pid": os.getpid()})

    for i in range(args.startup_events):
        emit("tick", args.run, i)
    # The port of a process that just exited may linger for a moment.
    if os.environ.get("LIGHT_DEV_BUNDLES") == "1":  # Dash's unminified bundles (profiling)
        app.enable_dev_tools(
            debug=False,
            dev_tools_serve_dev_bundles=True,
            dev_tools_ui=False,
            dev_tools_props_check=False,
            dev_tools_hot_reload=False,
        )
    server.mount_wsgi(app.server)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.start()
            break
        except swarmcast.ServerStartError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    run(app, server)


if __name__ == "__main__":
    main()
