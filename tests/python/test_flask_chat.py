"""The Flask-SocketIO example app and its swarmcast port (an import change) pass the same
client test, run unchanged against both. The Flask-SocketIO half is skipped only when
flask-socketio cannot be imported."""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from conftest import WAIT, Inbox, free_port, make_client, python_script, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask_chat"
APPS = {"flask_socketio": EXAMPLE / "app.py", "swarmcast": EXAMPLE / "app_swarmcast.py"}


def test_port_is_an_import_change():
    original = (APPS["flask_socketio"]).read_text().splitlines()
    ported = (APPS["swarmcast"]).read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(original, ported, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-from flask_socketio import (", "+from swarmcast.flask import ("]


@pytest.fixture(params=sorted(APPS))
def chat_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "flask_socketio":
        pytest.importorskip("flask_socketio")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with python_script(str(APPS[request.param]), env={"PORT": str(port)}) as proc:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                r = requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=1)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.1)
        yield url


def _client(url: str, transport: str, name: str | None, events: tuple[str, ...]):
    inbox = Inbox()
    client = make_client(inbox, events)
    client.connect(
        url,
        transports=[transport],
        auth={"name": name} if name else None,
        wait_timeout=WAIT,
    )
    return client, inbox


EVENTS = ("welcome", "status", "chat", "message", "avatar", "tick", "left")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_chat_client(chat_url: str, transport: str):
    # A connect without a name is refused with the handler's message and data.
    refused = Inbox()
    anonymous = make_client(refused, ("connect_error",))
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(chat_url, transports=[transport], wait_timeout=WAIT)
    assert refused.get("connect_error") == (
        {"message": "name required", "data": {"hint": "connect with auth={'name': ...}"}},
    )

    alice, alice_in = _client(chat_url, transport, "alice", EVENTS)
    bob, bob_in = _client(chat_url, transport, "bob", EVENTS)
    try:
        assert alice_in.get("welcome") == ({"sid": alice.get_sid(), "name": "alice"},)
        assert bob_in.get("welcome") == ({"sid": bob.get_sid(), "name": "bob"},)

        # the per-client session and request.sid / request.namespace
        assert alice.call("whoami", timeout=WAIT) == {
            "sid": alice.get_sid(),
            "name": "alice",
            "namespace": "/",
        }

        # rooms, with acks answered by the handler's return value
        assert alice.call("join", {"room": "lobby"}, timeout=WAIT) == ["lobby"]
        assert alice_in.get("status") == ({"msg": "alice joined lobby"},)
        assert bob.call("join", {"room": "lobby"}, timeout=WAIT) == ["lobby"]
        assert alice_in.get("status") == ({"msg": "bob joined lobby"},)
        assert bob_in.get("status") == ({"msg": "bob joined lobby"},)

        # include_self=False: bob gets alice's line, alice does not
        ack = alice.call("chat", {"room": "lobby", "text": "hi bob"}, timeout=WAIT)
        assert ack == {"delivered": True}
        assert bob_in.get("chat") == ({"name": "alice", "text": "hi bob"},)
        assert alice_in.empty_for(0.3)

        # send(..., broadcast=True) is a "message" to everyone
        bob.emit("shout", "hello all")
        assert alice_in.get("message") == ("bob: hello all",)
        assert bob_in.get("message") == ("bob: hello all",)

        # binary both ways
        blob = bytes(range(200))
        assert alice.call("avatar", blob, timeout=WAIT) == 200
        assert alice_in.get("avatar") == ({"name": "alice", "image": blob[::-1]},)

        # the background task emits to a room
        assert bob.call("ticks", timeout=WAIT) == "subscribed"
        first = bob_in.get("tick")[0]["n"]
        assert bob_in.get("tick")[0]["n"] > first

        # on_error_default answers the ack of a handler that raised
        assert alice.call("boom", timeout=WAIT) == {"error": "boom"}

        assert alice.call("leave", {"room": "lobby"}, timeout=WAIT) == []

        # disconnect() in a handler: the server disconnects the client
        bob.emit("kick_me")
        wait_for(lambda: not bob.connected, what="bob disconnected by the server")
        assert alice_in.get("left") == ({"name": "bob"},)
        # the app still serves alice
        assert alice.call("whoami", timeout=WAIT)["name"] == "alice"
    finally:
        alice.disconnect()
        bob.disconnect()


def test_the_page_and_socket_io_share_the_app_port(chat_url: str):
    # The Flask route and the Socket.IO endpoint answer on the same port (one origin:
    # the page's io() needs no URL and no CORS).
    page = requests.get(f"{chat_url}/", timeout=WAIT)
    assert page.status_code == 200
    assert "<title>chat</title>" in page.text
    handshake = requests.get(f"{chat_url}/socket.io/?EIO=4&transport=polling", timeout=WAIT)
    assert handshake.status_code == 200 and handshake.text.startswith("0{")
