"""Keyed live state: a subscriber gets the snapshot, then one delta per change."""

from __future__ import annotations

import pytest

import swarmcast
from conftest import WAIT, Inbox, connect, make_client


def test_state_map_api(make_server):
    server = make_server()
    agents = server.state("agents")
    assert isinstance(agents, swarmcast.StateMap)
    assert agents.name == "agents" and len(agents) == 0 and agents.version == 0
    agents["a1"] = {"status": "thinking"}
    agents.set("a2", [1, 2, None])
    assert agents["a1"] == {"status": "thinking"}
    assert agents.get("a2") == [1, 2, None]
    assert agents.get("nope") is None and agents.get("nope", 7) == 7
    assert "a1" in agents and "nope" not in agents
    assert agents.snapshot() == {"a1": {"status": "thinking"}, "a2": [1, 2, None]}
    assert sorted(agents.keys()) == ["a1", "a2"]
    assert agents.version == 2
    del agents["a2"]
    assert agents.delete("a1") is True
    assert agents.delete("a1") is False
    with pytest.raises(KeyError):
        agents["a1"]
    with pytest.raises(KeyError):
        del agents["a1"]
    with pytest.raises(TypeError, match=r"value\[\"x\"\]: object of type 'set'"):
        agents.set("bad", {"x": {1}})
    with pytest.raises(TypeError, match="binary"):
        agents.set("bad", b"bytes")
    assert len(agents) == 0 and agents.version == 4
    # the same map from the server, by name
    assert server.state("agents").version == 4


def test_snapshot_then_deltas(make_server, clients, transport):
    server = make_server(allow_subscribe=["state:agents"])
    agents = server.state("agents")
    agents["a1"] = {"status": "idle"}
    agents["a2"] = {"status": "working"}
    server.start()

    inbox = Inbox()
    client = make_client(inbox, ("swarmcast:snapshot", "swarmcast:delta"), ordered=True)
    clients.append(client)
    connect(client, server, transport)
    answer = client.call("subscribe", {"state": "agents"}, timeout=WAIT)
    assert answer == {"ok": True}

    (snapshot,) = inbox.get("swarmcast:snapshot")
    assert snapshot == {
        "map": "agents",
        "version": 2,
        "entries": {"a1": {"status": "idle"}, "a2": {"status": "working"}},
    }

    agents["a1"] = {"status": "thinking"}
    agents.delete("a2")
    agents.set("a3", 3)
    deltas = [inbox.get("swarmcast:delta")[0] for _ in range(3)]
    assert deltas == [
        {"map": "agents", "version": 3, "key": "a1", "value": {"status": "thinking"}},
        {"map": "agents", "version": 4, "key": "a2", "deleted": True},
        {"map": "agents", "version": 5, "key": "a3", "value": 3},
    ]

    # maps outside the allow-list are refused
    refused = client.call("subscribe", {"state": "other"}, timeout=WAIT)
    assert refused["ok"] is False
