"""Dash integration: swarmcast pushes events and keyed live state into `dcc.Store`s.

    import swarmcast
    from dash import Dash, html, Input, Output
    from swarmcast.dash import Bridge, Realtime, run

    server = swarmcast.Server(port=8050, allow_subscribe="state:*")
    app = Dash(__name__)
    bridge = Bridge(server, app)          # ping answers, snapshot endpoint, event ids
    rt = Realtime("rt", events=["log"], states=["agents"])   # this page's own origin
    app.layout = html.Div([rt, rt.indicator(), html.Pre(id="agents")])

    app.clientside_callback(
        "function (agents) { return JSON.stringify(agents, null, 1); }",
        Output("agents", "children"), Input(rt.state_store("agents"), "data"))

    bridge.state("agents").set("a1", {"status": "thinking"})   # any thread
    bridge.emit("log", {"text": "hello"})
    run(app, server, debug=True)   # the app and its push channel on one port

`run` is the default way: swarmcast serves the Dash app (WSGI) and Socket.IO on the
same port, so the page needs no URL and no CORS list. A Dash app served elsewhere
(`app.run()` on its own port) passes `url=server.url` to `Realtime` and lists its origin
in the server's `cors_allowed_origins`.

The browser side is a plain script served from this package (`_js_dist`): it connects
with the vendored socket.io-client and writes each store with
`dash_clientside.set_props`. No React build step; Dash >= 2.16 with the Flask backend.
See docs/dash.md for the store formats, the fallback and the deployment shapes.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import dash
from dash import MATCH, ClientsideFunction, Input, Output, State, dcc, html

import swarmcast as _swarmcast

__all__ = [
    "Bridge",
    "BridgeState",
    "ConnectionIndicator",
    "Realtime",
    "new_events",
    "run",
]

# Dash serves the scripts of every package that defines components, from that package's
# top-level `_js_dist` (the component classes below register `swarmcast`).
_swarmcast._js_dist = [  # type: ignore[attr-defined]
    {"relative_package_path": "dash_assets/socket.io-client.js", "namespace": "swarmcast"},
    {"relative_package_path": "dash_assets/swarmcast-dash.js", "namespace": "swarmcast"},
]

DEFAULT_SNAPSHOT_ROUTE = "_swarmcast/snapshot"
_DEFAULT = object()


def _id(kind: str, rt: Any, name: Optional[str] = None) -> Dict[str, Any]:
    ident: Dict[str, Any] = {"swarmcast": kind, "rt": rt}
    if name is not None:
        ident["name"] = name
    return ident


def _ms(seconds: float, what: str) -> int:
    if seconds is None or seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
    return int(round(seconds * 1000))


def _per_name(value: Union[int, Mapping[str, int]], names: Sequence[str], what: str) -> Dict[str, int]:
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what}: not among the events: {sorted(unknown)}")
        return {n: int(value.get(n, 0)) for n in names}
    return {n: int(value) for n in names}


class Realtime(html.Div):
    """The stores a swarmcast connection writes, as one hidden `html.Div` to put in a layout.

    - `rt.config_store`: the connection settings (a `dcc.Store`); a callback may write
      `enabled: False` into its data to close the connection (and `True` to reopen it).
    - `rt.status_store`: `{"state": "connecting" | "connected" | "reconnecting" |
      "fallback" | "offline" | "paused", "transport", "attempt", "next_retry_in",
      "rtt_ms", "recovered", "error", ...}`.
    - `rt.event_store(name)`: `{"seq": n, "events": [{"seq", "id", "ts", "t", "data"}]}`,
      the last `buffer` events of `name` in arrival order; `seq` counts every event the
      page received, so a consumer takes the entries with `seq` above the last it took
      (`new_events`). Identical payloads are separate entries.
    - `rt.state_store(name)`: the keyed live state map `name`, the full current map.
    - `rt.indicator()`: a ready-made connection status component.

    `url`: the swarmcast server (`None`: this page's origin, behind a reverse proxy);
    `path`: its Socket.IO path. `transports`: socket.io-client's (default: long-polling
    first, then upgrade to WebSocket when it passes). `fallback_url`: the snapshot
    endpoint polled on a `dcc.Interval` when push cannot connect for `fallback_after`
    seconds (default: the one `Bridge.init_app` serves; `None` disables the fallback).
    `flush_interval`: the stores are written at most this often (leading edge: a lone
    event is written at once), so a burst costs Dash one re-render per interval.
    """

    def __init__(
        self,
        id: str,
        events: Iterable[str] = (),
        states: Iterable[str] = (),
        url: Optional[str] = None,
        path: str = "/socket.io",
        auth: Optional[Mapping[str, Any]] = None,
        *,
        namespace: str = "/",
        transports: Optional[Sequence[str]] = None,
        buffer: Union[int, Mapping[str, int]] = 200,
        history: Union[int, Mapping[str, int]] = 1,
        fallback_url: Any = _DEFAULT,
        fallback_after: float = 3.0,
        fallback_interval: float = 1.0,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        ping_interval: float = 5.0,
        connect_timeout: float = 10.0,
        flush_interval: float = 0.016,
        enabled: bool = True,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError("Realtime needs a non-empty str id")
        events = list(events)
        states = list(states)
        for name in events + states:
            if not isinstance(name, str) or not name:
                raise ValueError(f"event and state names must be non-empty str, not {name!r}")
        if transports is not None:
            transports = list(transports)
            bad = [t for t in transports if t not in ("polling", "websocket", "webtransport")]
            if bad or not transports:
                raise ValueError(f"unknown transports: {bad or transports}")
        if not 0 <= randomization_factor <= 1:
            raise ValueError("randomization_factor must be within [0, 1]")
        if fallback_url is _DEFAULT:
            fallback_url = DEFAULT_SNAPSHOT_ROUTE
        buffers = _per_name(buffer, events, "buffer")
        if any(b < 1 for b in buffers.values()):
            raise ValueError("buffer must be >= 1")
        config: Dict[str, Any] = {
            "id": id,
            "url": url,
            "path": path,
            "namespace": namespace,
            "auth": dict(auth) if auth is not None else None,
            "transports": transports,
            "events": events,
            "states": states,
            "buffer": buffers,
            "history": _per_name(history, events, "history"),
            "reconnection": {
                "delay": _ms(reconnection_delay, "reconnection_delay"),
                "delay_max": _ms(reconnection_delay_max, "reconnection_delay_max"),
                "jitter": randomization_factor,
            },
            "fallback": {
                "url": fallback_url,
                "after": _ms(fallback_after, "fallback_after"),
                "interval": _ms(fallback_interval, "fallback_interval"),
            },
            "ping_interval": _ms(ping_interval, "ping_interval"),
            "connect_timeout": _ms(connect_timeout, "connect_timeout"),
            "flush_interval": max(0, int(round(flush_interval * 1000))),
            "enabled": bool(enabled),
        }
        children: List[Any] = [
            dcc.Store(id=_id("config", id), data=config),
            dcc.Store(id=_id("status", id), data={"state": "connecting" if enabled else "paused"}),
            dcc.Store(id=_id("poll", id)),
            # Ticks once after the page rendered: starts the connection even when the
            # config store's initial callback is skipped (Dash drops it when another
            # callback writes the config at load and answers no_update).
            dcc.Interval(id=_id("boot", id), interval=10, max_intervals=1),
            dcc.Interval(
                id=_id("interval", id),
                interval=config["fallback"]["interval"],
                disabled=True,
            ),
        ]
        children += [dcc.Store(id=_id("event", id, n), data={"seq": 0, "events": []}) for n in events]
        children += [dcc.Store(id=_id("state", id, n), data={}) for n in states]
        super().__init__(children=children, id=_id("root", id), style={"display": "none"})
        self._rt = id
        self._events = events
        self._states = states

    @property
    def rt_id(self) -> str:
        return self._rt

    @property
    def config_store(self) -> Dict[str, Any]:
        return _id("config", self._rt)

    @property
    def status_store(self) -> Dict[str, Any]:
        return _id("status", self._rt)

    @property
    def interval(self) -> Dict[str, Any]:
        """The fallback `dcc.Interval` (enabled only while push is unreachable)."""
        return _id("interval", self._rt)

    def event_store(self, name: str) -> Dict[str, Any]:
        if name not in self._events:
            raise KeyError(f"{name!r} is not among this Realtime's events {self._events}")
        return _id("event", self._rt, name)

    def state_store(self, name: str) -> Dict[str, Any]:
        if name not in self._states:
            raise KeyError(f"{name!r} is not among this Realtime's states {self._states}")
        return _id("state", self._rt, name)

    def indicator(self, **props: Any) -> "ConnectionIndicator":
        """The connection status component of this Realtime (props go to its `html.Div`)."""
        return ConnectionIndicator(self._rt, **props)


class ConnectionIndicator(html.Div):
    """Connected / reconnecting (attempt n, next retry) / polling fallback / offline, with
    the transport in use and the ping round trip. Rendered in the browser from the status
    store (no request to Dash), by updating the props of fixed elements: the inner span
    (class `swarmcast-indicator swarmcast-<state>`) carries `data-state` and
    `data-transport`. `props` go to the outer `html.Div`.
    """

    def __init__(self, rt: str, **props: Any) -> None:
        props.setdefault("className", "swarmcast-indicator-box")
        super().__init__(
            children=html.Span(
                id=_id("indicator", rt),
                className="swarmcast-indicator swarmcast-connecting",
                style={"display": "inline-flex", "alignItems": "center", "gap": "0.4em"},
                title="",
                children=[
                    html.Span(
                        id=_id("indicator-dot", rt),
                        style={
                            "width": "0.7em",
                            "height": "0.7em",
                            "borderRadius": "50%",
                            "display": "inline-block",
                            "background": "#9ca3af",
                        },
                    ),
                    html.Strong("Connecting…", id=_id("indicator-label", rt)),
                    html.Span("", id=_id("indicator-detail", rt), style={"opacity": 0.75}),
                ],
                **{"data-state": "connecting", "data-transport": ""},  # type: ignore[arg-type]
            ),
            **props,
        )


def new_events(data: Optional[Mapping[str, Any]], since: int = 0) -> Tuple[List[Dict[str, Any]], int, int]:
    """The entries of an event store newer than `since` (a `seq`).

    Returns `(events, seq, missed)`: pass `seq` as `since` next time; `missed` counts
    entries that fell out of the store's buffer before this consumer saw them.
    """
    if not data or not data.get("events"):
        return [], int(data.get("seq", since)) if data else since, 0
    events = [e for e in data["events"] if e["seq"] > since]
    first = events[0]["seq"] if events else data["seq"] + 1
    return events, int(data["seq"]), max(0, first - since - 1)


# The browser side of every Realtime on the page: pattern-matching clientside callbacks,
# registered once for all apps of this process (as Dash's all-in-one components do).
dash.clientside_callback(
    ClientsideFunction("swarmcastDash", "configure"),
    Output(_id("status", MATCH), "data"),
    Input(_id("config", MATCH), "data"),
    Input(_id("boot", MATCH), "n_intervals"),
)
dash.clientside_callback(
    ClientsideFunction("swarmcastDash", "poll"),
    Output(_id("poll", MATCH), "data"),
    Input(_id("interval", MATCH), "n_intervals"),
    State(_id("config", MATCH), "data"),
    prevent_initial_call=True,
)
dash.clientside_callback(
    ClientsideFunction("swarmcastDash", "indicator"),
    Output(_id("indicator", MATCH), "className"),
    Output(_id("indicator", MATCH), "data-state"),
    Output(_id("indicator", MATCH), "data-transport"),
    Output(_id("indicator", MATCH), "title"),
    Output(_id("indicator-dot", MATCH), "style"),
    Output(_id("indicator-label", MATCH), "children"),
    Output(_id("indicator-detail", MATCH), "children"),
    Input(_id("status", MATCH), "data"),
)


# --------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------


class BridgeState:
    """A keyed live state map written through a `Bridge`: the swarmcast server's own map
    (`server.state(name)`), which the snapshot endpoint serves too. It survives the
    server's restarts (`server.stop()` then `server.start()`)."""

    def __init__(self, bridge: "Bridge", name: str) -> None:
        self._bridge = bridge
        self.name = name

    @property
    def _map(self) -> Any:
        return self._bridge._map(self.name)

    def set(self, key: str, value: Any) -> None:
        self._map.set(key, value)

    def delete(self, key: str) -> bool:
        return bool(self._map.delete(key))

    def update(self, entries: Mapping[str, Any]) -> None:
        smap = self._map
        for key, value in entries.items():
            smap.set(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return self._map.get(key, default)

    def snapshot(self) -> Dict[str, Any]:
        return dict(self._map.snapshot())

    @property
    def version(self) -> int:
        return int(self._map.version)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __getitem__(self, key: str) -> Any:
        return self._map[key]

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._map

    def __len__(self) -> int:
        return len(self._map)


class Bridge:
    """The server side of `Realtime`: publish through it and Dash pages lose nothing.

    - `emit(event, data)` broadcasts `data` with a second argument `{"id", "ts", "epoch"}`
      (a per-event sequence number, the emit time in epoch ms, this Bridge's identity)
      and keeps the last `keep` events of each name for the snapshot endpoint, so that a
      page that was away (reconnecting, or polling while the realtime server was down)
      fetches exactly what it missed, in order. Plain `server.emit` works too, without
      that guarantee.
    - `state(name)` writes a keyed state map: the server's own, which the snapshot
      endpoint serves too and which survives a restart of the server.
    - answers `swarmcast:ping` (the status indicator's round trip) and
      `swarmcast:catchup` (the snapshot endpoint's answer over a page's own connection,
      ordered behind the pushes sent before it);
    - `init_app(app)` serves the snapshot endpoint on the Dash app's Flask server.
    - `attach(server)` publishes through `server` (one that is restarted with
      `stop()` / `start()` stays attached).

    Works while the swarmcast server is stopped (emits are recorded only, state maps
    take changes); state maps need a server attached.
    """

    def __init__(
        self,
        server: Optional[Any] = None,
        app: Optional[Any] = None,
        *,
        keep: int = 1000,
        namespace: str = "/",
        route: str = DEFAULT_SNAPSHOT_ROUTE,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.keep = keep
        self.namespace = namespace
        self.route = route
        self.epoch = uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._events: Dict[str, Deque[Tuple[int, float, Any]]] = {}
        self._last: Dict[str, int] = {}
        # The names of the maps written through this Bridge (their entries are the
        # server's): what the snapshot endpoint may serve.
        self._state_names: Set[str] = set()
        self.server: Optional[Any] = None
        if server is not None:
            self.attach(server)
        if app is not None:
            self.init_app(app)

    # -- the swarmcast server ------------------------------------------------------

    def attach(self, server: Any) -> None:
        """Publish through `server` from now on."""
        server.on("swarmcast:ping", _pong, namespace=self.namespace)
        server.on("swarmcast:catchup", self._catch_up, namespace=self.namespace)
        with self._lock:
            self.server = server

    def detach(self) -> None:
        """Stop publishing (emits are only recorded)."""
        with self._lock:
            self.server = None

    def _map(self, name: str) -> Any:
        server = self.server
        if server is None:
            raise RuntimeError("swarmcast.dash.Bridge: no server attached for state maps")
        return server.state(name, namespace=self.namespace)

    # -- publishing ------------------------------------------------------------------

    def emit(
        self,
        event: str,
        data: Any = None,
        *,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        volatile: bool = False,
    ) -> int:
        """Broadcast `event` and record it; returns its id (per event name, from 1).

        `to` (alias `room`): a sid (a page's, from its status store's `sid`), a room, or
        a list of them: only those pages get it, and it is not recorded (a page that
        connects later, or fetches the snapshot, does not replay it). Returns 0 then."""
        to = to if to is not None else room
        if to is not None or skip_sid is not None:
            server = self.server
            if server is None:
                raise RuntimeError("swarmcast.dash.Bridge: no server attached")
            ts = time.time() * 1000.0
            server.emit(
                event,
                (data, {"ts": ts, "epoch": self.epoch}),
                to=to,
                skip_sid=skip_sid,
                namespace=self.namespace,
                volatile=volatile,
            )
            return 0
        with self._lock:
            n = self._last.get(event, 0) + 1
            ts = time.time() * 1000.0
            server = self.server
            if server is not None:
                # Under the lock: ids go out in the order they were given. A payload that
                # cannot be encoded raises here (TypeError) and is not recorded.
                _quiet(
                    server.emit,
                    event,
                    (data, {"id": n, "ts": ts, "epoch": self.epoch}),
                    namespace=self.namespace,
                    volatile=volatile,
                )
            self._last[event] = n
            ring = self._events.get(event)
            if ring is None:
                ring = self._events[event] = collections.deque(maxlen=self.keep)
            ring.append((n, ts, data))
        return n

    def state(self, name: str) -> BridgeState:
        with self._lock:
            self._state_names.add(name)
        return BridgeState(self, name)

    # -- the snapshot endpoint -------------------------------------------------------

    def snapshot(
        self,
        states: Iterable[Tuple[str, Optional[int]]] = (),
        events: Iterable[Union[Tuple[str, Optional[int]], Tuple[str, Optional[int], Optional[str]]]] = (),
    ) -> Dict[str, Any]:
        """What the snapshot endpoint answers.

        `states`: `(name, version)`; a map is included unless its version is `version`.
        `events`: `(name, since)` or `(name, since, epoch)`; `since >= 0` gives the events
        with a greater id, `since < 0` the last `-since` ones, `None` none (only the last
        id). `epoch`: the Bridge epoch `since` was counted in; another one than this
        Bridge's (the publishing process restarted, its ids started again at 1) makes
        `since` 0: every event this Bridge kept, so a page loses none of the new
        process's first events.
        """
        out_states: Dict[str, Any] = {}
        with self._lock:
            known = set(self._state_names)
            server = self.server
        for name, version in states:
            if name not in known or server is None:
                continue
            smap = server.state(name, namespace=self.namespace)
            # The version first: a change in between makes the next poll fetch again.
            current = smap.version
            entries = smap.snapshot()
            if version is not None and version == current:
                continue
            out_states[name] = {"version": current, "entries": dict(entries)}
        with self._lock:
            out_events: Dict[str, Any] = {}
            for query in events:
                name, since = query[0], query[1]
                epoch = query[2] if len(query) > 2 else None
                if epoch is not None and epoch != self.epoch and since is not None and since >= 0:
                    since = 0
                if name not in self._last:
                    out_events[name] = {"last": 0, "events": []}
                    continue
                ring = self._events[name]
                if since is None:
                    picked = []
                elif since >= 0:
                    picked = [e for e in ring if e[0] > since] if since < self._last[name] else []
                else:
                    picked = list(ring)[since:]
                out_events[name] = {
                    "last": self._last[name],
                    "events": [{"id": i, "ts": ts, "data": d} for i, ts, d in picked],
                }
        return {"epoch": self.epoch, "time": time.time() * 1000.0, "states": out_states, "events": out_events}

    def init_app(self, app: Any) -> None:
        """Serve the snapshot endpoint at `route` on a Dash app (or a Flask app)."""
        flask_app = getattr(app, "server", app)
        if not hasattr(flask_app, "add_url_rule"):
            raise TypeError(
                "swarmcast.dash.Bridge serves its endpoint on Flask: Dash's default backend "
                f"(got {type(flask_app).__name__})"
            )
        prefix = "/"
        config = getattr(app, "config", None)
        if config is not None and hasattr(app, "server"):
            prefix = getattr(config, "routes_pathname_prefix", None) or "/"
        rule = prefix.rstrip("/") + "/" + self.route.lstrip("/")
        flask_app.add_url_rule(rule, f"swarmcast_snapshot_{self.epoch}", self._serve, methods=["GET"])

    def _catch_up(self, sid: str, query: Any = None, *rest: Any) -> Dict[str, Any]:
        """`swarmcast:catchup`: the snapshot endpoint's answer over the page's own
        connection, `query` being `{"state": [...], "event": [...]}` in the endpoint's
        syntax. Why: the answer is queued behind every push sent before it was taken
        (those are emitted under the same lock), so it cannot overtake one still in
        flight, which an HTTP answer can: the page would take that push's id for one
        already shown, and drop it."""
        if not isinstance(query, dict):
            return {"error": "swarmcast:catchup needs {state: [...], event: [...]}"}
        try:
            states = [_parse_state(str(s)) for s in query.get("state") or []]
            events = [_parse_event(str(e)) for e in query.get("event") or []]
        except ValueError as e:
            return {"error": str(e)}
        # With emit_in_background, the answer waits for the emits handed off before it
        # (the server holds every handler's answer back so).
        return self.snapshot(states, events)

    def _serve(self) -> Any:
        import flask

        args = flask.request.args
        try:
            states = [_parse_state(s) for s in args.getlist("state")]
            events = [_parse_event(e) for e in args.getlist("event")]
        except ValueError as e:
            return flask.Response(json.dumps({"error": str(e)}), status=400, mimetype="application/json")
        body = json.dumps(self.snapshot(states, events), separators=(",", ":"), allow_nan=False, default=str)
        response = flask.Response(body, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response


def _parse_state(arg: str) -> Tuple[str, Optional[int]]:
    name, sep, version = arg.rpartition(":")
    if sep and version.lstrip("-").isdigit():
        return name, int(version)
    return arg, None


def _parse_event(arg: str) -> Tuple[str, Optional[int], Optional[str]]:
    """`NAME:SINCE`, `NAME:SINCE@EPOCH` (the epoch SINCE was counted in) or `NAME:latest`."""
    name, sep, since = arg.rpartition(":")
    if sep and since == "latest":
        return name, None, None
    since, at, epoch = since.partition("@")
    if not sep or not since.lstrip("-").isdigit() or (at and not epoch):
        raise ValueError(f"event parameter must be NAME:SINCE, NAME:SINCE@EPOCH or NAME:latest, not {arg!r}")
    return name, int(since), epoch or None


def _pong(sid: str, data: Any = None, *rest: Any) -> Dict[str, Any]:
    t = data.get("t") if isinstance(data, dict) else None
    return {"t": t, "server": time.time() * 1000.0}


def _quiet(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Publishing must not fail the caller when the server is stopped: the copy kept by
    the Bridge is what pages catch up from."""
    try:
        return func(*args, **kwargs)
    except _swarmcast.SwarmcastError:
        return None


def run(
    app: "dash.Dash",
    server: Optional[Any] = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    debug: bool = False,
    use_reloader: Optional[bool] = None,
    extra_files: Optional[Sequence[str]] = None,
) -> None:
    """Serve the Dash app and its push channel on one port until interrupted.

    swarmcast serves the app's Flask server (WSGI, on worker threads) beside Socket.IO,
    so `Realtime` components connect to their page's own origin with no CORS list.
    `server` is the `swarmcast.Server` the app's `Bridge` publishes through (its host
    and port are used); without one, a server on `host`:`port` is made. `debug` turns on
    Dash's dev tools and, unless `use_reloader=False`, Werkzeug's reloader: only the
    serving child process starts the server.
    """
    if use_reloader is None:
        use_reloader = debug
    if debug:
        app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)

    def serve() -> None:
        srv = server if server is not None else _swarmcast.Server(host=host, port=port)
        if not srv.running:
            srv.mount_wsgi(app.server)
            srv.start()
        print(f" * swarmcast: serving Dash app and Socket.IO on {srv.url}", flush=True)
        stopped = threading.Event()
        try:
            while not stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            srv.stop()

    if use_reloader:
        from werkzeug._reloader import run_with_reloader

        run_with_reloader(serve, extra_files=extra_files)
    else:
        serve()
