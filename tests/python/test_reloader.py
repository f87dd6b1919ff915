"""`socketio.run(app, debug=True)` with Werkzeug's reloader: only the serving child binds
the port; an edit restarts it with the new code, and a client reconnects."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import requests

from conftest import WAIT, free_port, make_client, python_script, wait_for

APP = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from swarmcast.flask import SocketIO

    app = Flask(__name__)
    socketio = SocketIO(app)

    @app.route("/")
    def index():
        return "VERSION-1"

    if __name__ == "__main__":
        socketio.run(app, host="127.0.0.1", port=int(sys.argv[1]), debug=True)
    """
)


def _page(url: str) -> str | None:
    try:
        return requests.get(url, timeout=1).text
    except requests.RequestException:
        return None


@pytest.mark.timeout(120)
def test_an_edit_reloads_the_app_and_clients_reconnect(tmp_path: Path, clients):
    app_file = tmp_path / "reload_app.py"
    app_file.write_text(APP)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with python_script(str(app_file), str(port), cwd=str(tmp_path)):
        wait_for(lambda: _page(url) == "VERSION-1", timeout=30, what="the first version")
        client = make_client()
        client.reconnection = True
        clients.append(client)
        client.connect(url, transports=["websocket"], wait_timeout=WAIT)
        first_sid = client.get_sid()
        time.sleep(1.2)  # the stat reloader compares modification times (1 s steps)
        app_file.write_text(APP.replace("VERSION-1", "VERSION-2"))
        wait_for(lambda: _page(url) == "VERSION-2", timeout=60, what="the reloaded version")
        wait_for(
            lambda: client.connected and client.get_sid() != first_sid,
            timeout=30,
            what="the client to reconnect to the reloaded server",
        )
