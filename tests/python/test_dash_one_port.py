"""`swarmcast.dash.run`: a Dash app and its push channel on one port. The layout, a
server-side callback and the swarmcast assets answer through swarmcast, and a Socket.IO
client on the same port gets the Bridge's events."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import requests

from conftest import WAIT, Inbox, free_port, make_client, python_script, wait_for

APP = textwrap.dedent(
    """
    import sys, threading, time
    import swarmcast
    from dash import Dash, html, dcc, Input, Output
    from swarmcast.dash import Bridge, Realtime, run

    server = swarmcast.Server(port=int(sys.argv[1]))
    app = Dash(__name__)
    bridge = Bridge(server, app)
    rt = Realtime("rt", events=["log"])
    app.layout = html.Div([rt, dcc.Input(id="x", value="a"), html.Div(id="y")])

    @app.callback(Output("y", "children"), Input("x", "value"))
    def echo(value):
        return "got " + value

    def ticker():
        for i in range(600):
            bridge.emit("log", {"n": i})
            time.sleep(0.1)

    threading.Thread(target=ticker, daemon=True).start()
    run(app, server)
    """
)


@pytest.mark.timeout(120)
def test_dash_and_its_push_channel_share_one_port(tmp_path: Path, clients):
    pytest.importorskip("dash")
    app_file = tmp_path / "dash_app.py"
    app_file.write_text(APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def page() -> str | None:
        try:
            r = requests.get(url + "/", timeout=1)
            return r.text if r.ok else None
        except requests.RequestException:
            return None

    with python_script(str(app_file), str(port), cwd=str(tmp_path)):
        html = wait_for(page, timeout=60, what="the Dash page")
        assert "_dash-config" in html
        layout = requests.get(url + "/_dash-layout", timeout=WAIT).json()
        assert "rt" in str(layout)
        update = requests.post(
            url + "/_dash-update-component",
            json={
                "output": "y.children",
                "outputs": {"id": "y", "property": "children"},
                "inputs": [{"id": "x", "property": "value", "value": "b"}],
                "changedPropIds": ["x.value"],
                "state": [],
            },
            timeout=WAIT,
        )
        assert update.status_code == 200 and "got b" in update.text
        # The swarmcast-dash assets come from the same port.
        assert "swarmcast-dash" in html
        inbox = Inbox()
        client = make_client(inbox, ("log",))
        clients.append(client)
        client.connect(url, transports=["websocket"], wait_timeout=WAIT)
        assert inbox.get("log")[0]["n"] >= 0
