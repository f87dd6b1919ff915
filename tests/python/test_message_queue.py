"""message_queue: two Python servers joined through Redis by the core's Redis adapter,
and a write-only Flask-SocketIO emitter (``SocketIO(message_queue=...)``, no app).
Starts its own redis-server (test_cluster's fixture); skipped without one."""

from __future__ import annotations

import shutil

import flask
import pytest

from conftest import WAIT, Inbox, make_client, wait_for
from swarmcast.flask import SocketIO
from test_cluster import redis_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def test_two_servers_and_a_write_only_emitter(redis_url, make_server, clients) -> None:  # noqa: F811
    a = make_server(message_queue=redis_url)
    b = make_server(message_queue=redis_url)
    a.start()
    b.start()
    inbox = Inbox()
    client = make_client(inbox, ("news", "flask"))
    clients.append(client)
    client.connect(b.url, transports=["websocket"], wait_timeout=WAIT)
    sid = client.get_sid()
    wait_for(lambda: sid in b.sids(), what="connected")
    b.enter_room(sid, "room1")
    # emitted on server a, delivered by server b (retry until the cluster is joined)
    wait_for(lambda: a.emit("news", "ping", to="room1") is not None and inbox_has(inbox), what="cluster")
    writer = SocketIO(message_queue=redis_url)
    assert writer.server_options["client_manager"].write_only
    writer.emit("flask", {"x": 1}, to="room1")
    assert inbox.get("flask") == ({"x": 1},)
    app = flask.Flask(__name__)
    assert not SocketIO(app, message_queue=redis_url).server_options["client_manager"].write_only


def inbox_has(inbox: Inbox) -> bool:
    return not inbox.empty_for(0.2)
