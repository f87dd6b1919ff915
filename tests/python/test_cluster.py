"""swarmcast.RedisEmitter: publishing into a cluster through Redis without a server.

Starts its own redis-server on a free loopback port and a swarmcast node (the CLI of
cli/, Redis on by default, target/debug/swarmcast, as scripts/test.sh builds it);
skipped when either is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

import swarmcast
from conftest import WAIT, Inbox, make_client, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / os.environ.get("SWARMCAST_CLUSTER_BIN", "target/debug/swarmcast")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_has_redis() -> bool:
    if not BIN.exists():
        return False
    return subprocess.run([str(BIN), "emit", "--help"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or not _node_has_redis(),
    reason="needs redis-server and target/debug/swarmcast (cli/) built with its redis feature",
)


@pytest.fixture
def redis_url() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def node(redis_url: str) -> Iterator[str]:
    """A swarmcast node on the cluster; yields its URL."""
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", "0", "--redis", redis_url, "--allow-subscribe", "*"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_redis_emitter_reaches_a_room_on_a_node(
    redis_url: str, node: str, clients: list[socketio.Client]
) -> None:
    inbox = Inbox()
    inside = make_client(inbox, ("news", "bin"))
    outside_inbox = Inbox()
    outside = make_client(outside_inbox, ("news",))
    for c in (inside, outside):
        c.connect(node, transports=["websocket"], wait_timeout=WAIT)
        clients.append(c)
    assert inside.call("subscribe", {"room": "news"}, timeout=WAIT) == {"ok": True}

    emitter = swarmcast.RedisEmitter(redis_url)
    entry = emitter.emit("news", {"title": "hi"}, to="news")
    assert entry.count("-") == 1
    assert inbox.get("news") == ({"title": "hi"},)
    assert outside_inbox.empty_for(0.3)
    # Several arguments and binary data.
    emitter.emit("bin", ("a", b"\x00\x01"), to="news")
    assert inbox.get("bin") == ("a", b"\x00\x01")
    with pytest.raises(swarmcast.EmitError):
        emitter.emit("connect", 1)


def test_state_from_a_redis_emitter_reaches_subscribers(
    redis_url: str, node: str, clients: list[socketio.Client]
) -> None:
    inbox = Inbox()
    client = make_client(inbox, ("swarmcast:snapshot", "swarmcast:delta"))
    client.connect(node, transports=["websocket"], wait_timeout=WAIT)
    clients.append(client)
    emitter = swarmcast.RedisEmitter(redis_url)
    emitter.set_state("jobs", "j1", {"state": "queued"})
    assert client.call("subscribe", {"state": "jobs"}, timeout=WAIT) == {"ok": True}
    snapshot = wait_for(lambda: inbox.get("swarmcast:snapshot"), what="snapshot")
    assert snapshot[0]["entries"] == {"j1": {"state": "queued"}}
    emitter.delete_state("jobs", "j1")
    delta = inbox.get("swarmcast:delta")
    assert delta[0]["key"] == "j1" and delta[0]["deleted"] is True


def test_an_unreachable_redis_is_an_error() -> None:
    with pytest.raises(swarmcast.EmitError):
        swarmcast.RedisEmitter(f"redis://127.0.0.1:{_free_port()}")
