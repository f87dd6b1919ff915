"""The SwarmBot dashboard: one Dash page, two ways of keeping it current.

- push (swarmcast): `swarmcast.dash.Realtime` writes the agents and tasks maps and the
  activity and metrics events into stores; clientside callbacks (assets/swarmbot.js)
  render them. No request reaches Dash after the page has loaded.
- poll (the old way): a 1-second `dcc.Interval` calls a server callback that renders
  the coordinator's own view into the same elements (render.py, the Python twin of the
  clientside renderers). The switch at the top moves between the two; the traffic panel counts the
  requests and bytes of each (see docs/dash.md for what exactly is counted).
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

import json

from dash import Dash, Input, Output, State, dcc, html
from swarmcast.dash import Bridge, Realtime

import render
from coordinator import SwarmCoordinator

HERE = os.path.dirname(os.path.abspath(__file__))

ACTIVITY_BUFFER = 300  # events kept by the activity store (the log shows 200)
METRICS_BUFFER = 120  # 60 s of samples at 2 per second
BOARD_COLUMNS = (("queued", "Queued"), ("research", "Research"), ("code", "Code"), ("review", "Review"), ("test", "Test"), ("done", "Done"))

# The page is laid out once; updates change fixed elements (the text of a <pre>, a
# canvas, the HTML of two painted Divs, below), addressed by plain string ids. Dash's
# renderer does work per Dash component at every change (Dash 4 more than Dash 2), so
# tables of components, callbacks returning new child components, or pattern-matching
# ids would cost far more than the push itself.
#
# The agents table and the task board are HTML the renderers build (every value
# escaped), painted by a clientside callback into a Div that Dash gives no children (so
# React never reconciles them): as the children of a dcc.Markdown the same HTML went
# through Dash's Markdown parser at every update, ~6 ms more per agent update on the
# development machine (p50 push delay 11-12 ms; painted, 6-7.5 ms). The callbacks' output,
# a `data-painted` attribute, is never updated: the paint is the effect.
#
# The four graphs are canvases drawn by the same clientside code (not dcc.Graph): one
# Plotly redraw of such a chart holds the browser's main thread 13-16 ms here, and a push
# update arriving meanwhile waits for it (swarmbot.js says more).


def _graph(graph_id: str, title: str) -> html.Div:
    """A live graph: a canvas the clientside renderer draws (assets/swarmbot.js, `chart`)."""
    return html.Div(className="graph", children=[html.H3(title), html.Canvas(id=graph_id, className="chart")])


def _painted(element_id: str) -> html.Div:
    """A Div the clientside renderers paint (see above); Dash renders no children in it."""
    return html.Div(id=element_id, className="painted")


def create_app(
    coordinator: SwarmCoordinator,
    bridge: Bridge,
    realtime_url: Optional[str],
    transports: Optional[List[str]] = None,
) -> Dash:
    app = Dash(
        __name__,
        title="SwarmBot · swarmcast",
        update_title="",  # no "Updating..." title while callbacks run
        assets_folder=os.path.join(HERE, "assets"),
    )
    bridge.init_app(app)
    rt = Realtime(
        "rt",
        events=["activity", "metrics"],
        states=["agents", "tasks"],
        url=realtime_url,
        transports=transports,
        buffer={"activity": ACTIVITY_BUFFER, "metrics": METRICS_BUFFER},
        history={"activity": 60, "metrics": METRICS_BUFFER},
    )
    app.layout = html.Div(
        className="page",
        children=[
            dcc.Location(id="url"),
            rt,
            dcc.Interval(id="poll-interval", interval=1000, disabled=True),
            dcc.Store(id="poll-html"),  # polling mode: the server's HTML for the painted Divs
            dcc.Interval(id="traffic-tick", interval=2000),
            html.Header(
                className="top",
                children=[
                    html.Div(
                        [
                            html.H1("SwarmBot"),
                            html.Span("agents coordinated live · swarmcast push into Dash", className="subtitle"),
                        ]
                    ),
                    rt.indicator(),
                    dcc.RadioItems(
                        id="mode",
                        className="mode",
                        options=[
                            {"label": " Push (swarmcast)", "value": "push"},
                            {"label": " Polling (1 s dcc.Interval)", "value": "poll"},
                        ],
                        value="push",
                        inline=True,
                    ),
                ],
            ),
            html.Div(className="traffic", children=html.Pre(id="traffic", className="traffic-lines")),
            html.Div(
                className="grid",
                children=[
                    html.Section(className="card agents", children=[html.H2("Agents"), _painted("agents-table")]),
                    html.Section(className="card log", children=[html.H2("Activity"), html.Div(id="activity-log", className="log-body", children=html.Pre(id="activity-lines", className="log-lines"))]),
                ],
            ),
            html.Section(className="card", children=[html.H2("Task board"), _painted("task-board")]),
            html.Section(
                className="card",
                children=[
                    html.H2("Performance"),
                    html.Div(
                        id="graphs",
                        className="graphs",
                        children=[
                            _graph("g-eps", "Events / s"),
                            _graph("g-tpm", "Tasks done / min"),
                            _graph("g-queue", "Queue depth · busy agents"),
                            _graph("g-lat", "Task latency (s) p50 · p95"),
                        ],
                    ),
                ],
            ),
        ],
    )

    # Rendering: the same clientside functions in both modes (assets/swarmbot.js).
    # Every value is HTML-escaped by the renderers (assets/swarmbot.js, render.py).
    agent_ids = list(coordinator.agents)
    columns = [key for key, _ in BOARD_COLUMNS]
    app.clientside_callback(
        "function (agents) { return window.dash_clientside.swarmbot.paint('agents-table', window.dash_clientside.swarmbot.agents(agents, %s)); }"
        % json.dumps(agent_ids),
        Output("agents-table", "data-painted"),
        Input(rt.state_store("agents"), "data"),
    )
    app.clientside_callback(
        "function (tasks) { return window.dash_clientside.swarmbot.paint('task-board', window.dash_clientside.swarmbot.tasks(tasks, %s)); }"
        % json.dumps(columns),
        Output("task-board", "data-painted"),
        Input(rt.state_store("tasks"), "data"),
    )
    app.clientside_callback(
        "function (log) { return window.dash_clientside.swarmbot.activity(log); }",
        Output("activity-lines", "children"),
        Input(rt.event_store("activity"), "data"),
    )
    app.clientside_callback(
        "function (m) { var sb = window.dash_clientside.swarmbot; return sb.graphs(sb.metrics(m)); }",
        Output("graphs", "data-painted"),
        Input(rt.event_store("metrics"), "data"),
    )
    # ?mode=poll opens the page in polling mode.
    app.clientside_callback(
        "function (search) { return window.dash_clientside.swarmbot.modeFromUrl(search); }",
        Output("mode", "value"),
        Input("url", "search"),
    )
    app.clientside_callback(
        "function (mode, cfg) { return window.dash_clientside.swarmbot.setMode(mode, cfg); }",
        Output(rt.config_store, "data"),
        Output("poll-interval", "disabled"),
        Input("mode", "value"),
        State(rt.config_store, "data"),
    )
    app.clientside_callback(
        "function (n) { return window.dash_clientside.swarmbot.traffic(n); }",
        Output("traffic", "children"),
        Input("traffic-tick", "n_intervals"),
    )

    # The old way: a server callback every second renders everything the page shows
    # into the same elements (the push mode's clientside renderers, in Python); the HTML
    # of the painted Divs and the metrics samples go through a store and are painted and
    # drawn as in push mode.
    app.clientside_callback(
        """function (h) {
            var sb = window.dash_clientside.swarmbot;
            return [sb.paint('agents-table', h.agents), sb.paint('task-board', h.tasks), sb.graphs(h.metrics)];
        }""",
        Output("agents-table", "data-painted", allow_duplicate=True),
        Output("task-board", "data-painted", allow_duplicate=True),
        Output("graphs", "data-painted", allow_duplicate=True),
        Input("poll-html", "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("poll-html", "data"),
        Output("activity-lines", "children", allow_duplicate=True),
        Input("poll-interval", "n_intervals"),
        prevent_initial_call=True,
    )
    def poll(_n: int) -> Any:
        view = coordinator.view()
        return (
            {"agents": render.agents(view["agents"], agent_ids), "tasks": render.board(view["tasks"], columns), "metrics": view["metrics"]},
            render.activity(view["activity"]),
        )

    return app


