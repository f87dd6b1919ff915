"""`swarmcast:catchup`, the Bridge's snapshot over a page's own connection (what the
Dash glue asks at connect and on a gap): checked with a python-socketio client while
the Bridge publishes. Every event the answer counts as published (`last`) has reached
the client before the answer does, so a page never takes a push still in flight for an
event it already has."""

from __future__ import annotations

import threading

import pytest

from conftest import connect, make_client


@pytest.mark.timeout(120)
@pytest.mark.parametrize("background", [False, True], ids=["emit", "emit_in_background"])
def test_the_answer_comes_after_every_push_it_counts(make_server, clients, transport, background):
    from swarmcast.dash import Bridge

    # In the background the pushes wait in the handoff: the answer waits for them.
    server = make_server(emit_in_background=background)
    bridge = Bridge(server)
    server.start()
    got: list[int] = []
    client = make_client(ordered=True)  # handlers and acks in wire order
    client.on("tick", lambda data, meta: got.append(meta["id"]))
    clients.append(client)
    connect(client, server, transport)

    stop = threading.Event()

    def publish() -> None:
        for i in range(20_000):
            if stop.is_set():
                return
            bridge.emit("tick", i)

    producer = threading.Thread(target=publish)
    producer.start()
    checked = 0
    try:
        for _ in range(30):
            answer = client.call("swarmcast:catchup", {"event": ["tick:latest"]}, timeout=10)
            seen = set(got)
            last = answer["events"]["tick"]["last"]
            assert answer["epoch"] == bridge.epoch
            missing = [i for i in range(1, last + 1) if i not in seen]
            assert not missing, f"answer counted {last}, {len(missing)} not arrived yet"
            checked += last > 0
    finally:
        stop.set()
        producer.join(30)
    assert checked > 0, "the Bridge published during the calls"


def test_history_and_errors(make_server, clients):
    from swarmcast.dash import Bridge

    server = make_server()
    bridge = Bridge(server)
    server.start()
    for i in range(5):
        bridge.emit("tick", i)
    client = make_client()
    clients.append(client)
    connect(client, server, "websocket")
    answer = client.call("swarmcast:catchup", {"event": ["tick:-2", "other:latest"]}, timeout=10)
    assert [e["data"] for e in answer["events"]["tick"]["events"]] == [3, 4]
    assert answer["events"]["other"] == {"last": 0, "events": []}
    assert "error" in client.call("swarmcast:catchup", "tick:-2", timeout=10)
    assert "error" in client.call("swarmcast:catchup", {"event": ["tick:x"]}, timeout=10)
