"""Unit checks of swarmcast.dash without a browser (run by scripts/test-e2e.sh with the
demo's interpreter, which has Dash): Bridge ids, state maps, snapshot queries, restarts;
Realtime's layout pieces; new_events."""

import json
import sys

import dash
import swarmcast
from swarmcast.dash import Bridge, Realtime, new_events


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok - {what}")


# Realtime: the pieces and their ids.
rt = Realtime("rt", events=["log"], states=["agents"], url="http://127.0.0.1:5000", buffer={"log": 5})
layout = json.loads(json.dumps(rt, default=lambda c: c.to_plotly_json()))
ids = [c["props"]["id"] for c in layout["props"]["children"]]
check({"swarmcast": "event", "rt": "rt", "name": "log"} in ids, "an event store per event name")
check({"swarmcast": "state", "rt": "rt", "name": "agents"} in ids, "a state store per state map")
check(rt.event_store("log") == {"swarmcast": "event", "rt": "rt", "name": "log"}, "event_store() gives its id")
config = next(c for c in layout["props"]["children"] if c["props"]["id"] == rt.config_store)["props"]["data"]
check(config["buffer"] == {"log": 5} and config["url"] == "http://127.0.0.1:5000", "the config carries the options")
check(config["history"] == {"log": 1}, "a page that connects later replays the latest event by default")
try:
    rt.state_store("nope")
    check(False, "unknown names raise")
except KeyError:
    check(True, "unknown names raise")
check(hasattr(swarmcast, "_js_dist") and len(swarmcast._js_dist) == 2, "the package declares its two scripts to Dash")

# new_events: consumption by seq, identical payloads count, misses are counted.
data = {"seq": 7, "events": [{"seq": s, "data": "same"} for s in (5, 6, 7)]}
events, seq, missed = new_events(data, 5)
check([e["seq"] for e in events] == [6, 7] and seq == 7 and missed == 0, "new_events takes what is newer")
events, seq, missed = new_events(data, 2)
check(len(events) == 3 and missed == 2, "new_events counts what fell out of the window")

# Bridge without a server: records, ids per event name, snapshot queries.
bridge = Bridge(keep=3)
for i in range(5):
    bridge.emit("log", {"i": i})
bridge.emit("other", 1)
snap = bridge.snapshot(events=[("log", 2), ("other", None)])
check([e["id"] for e in snap["events"]["log"]["events"]] == [3, 4, 5], "events after an id, within keep")
check(snap["events"]["other"] == {"last": 1, "events": []}, "latest: only the last id")
check([e["id"] for e in bridge.snapshot(events=[("log", -2)])["events"]["log"]["events"]] == [4, 5], "the last n")
# Epochs: ids counted by another Bridge (a publishing process that restarted) are
# answered from this Bridge's first event, so a page loses none of them.
snap = bridge.snapshot(events=[("log", 4, bridge.epoch)])
check([e["id"] for e in snap["events"]["log"]["events"]] == [5], "since an id of this epoch: what follows")
snap = bridge.snapshot(events=[("log", 4, "0ldep0ch")])
check([e["id"] for e in snap["events"]["log"]["events"]] == [3, 4, 5], "since an id of another epoch: all kept")
snap = bridge.snapshot(events=[("log", 9, "0ldep0ch")])
check([e["id"] for e in snap["events"]["log"]["events"]] == [3, 4, 5], "even past this epoch's last id")
check(bridge.snapshot(events=[("nope", 9, "0ldep0ch")])["events"]["nope"] == {"last": 0, "events": []}, "nothing yet")
from swarmcast.dash import _parse_event  # noqa: E402

check(_parse_event("a:b:7@e1") == ("a:b", 7, "e1"), "NAME:SINCE@EPOCH parses (a name may hold colons)")
check(_parse_event("log:7") == ("log", 7, None) and _parse_event("log:latest") == ("log", None, None), "old forms parse")
for bad in ("log:7@", "log:x@e1", "log"):
    try:
        _parse_event(bad)
        check(False, f"{bad!r} is refused")
    except ValueError:
        check(True, f"{bad!r} is refused")
try:
    bridge.state("agents").set("a1", 1)
    check(False, "state maps need a server")
except RuntimeError:
    check(True, "state maps need a server")

# With a server: its own maps (no copy), emits carry (data, meta), the endpoint, restart.
server = swarmcast.Server(port=0)
bridge.attach(server)
agents = bridge.state("agents")
agents.set("a1", {"s": 1})
agents.set("a2", {"s": 2})
check(agents.delete("a2") and not agents.delete("a2"), "delete says whether the key was there")
check(server.state("agents").snapshot() == {"a1": {"s": 1}}, "the Bridge writes the server's own map")
v = agents.version
check(bridge.snapshot(states=[("agents", v)])["states"] == {}, "an unchanged map is left out")
check(bridge.snapshot(states=[("agents", None)])["states"]["agents"]["entries"] == {"a1": {"s": 1}}, "the map's entries")
server.start()
try:
    n = bridge.emit("log", {"i": 5})
    check(n == 6, "ids go on across attach")
    check(bridge.emit("log", "private", to="no-such-sid") == 0, "a targeted emit gets no id")
    check(bridge.snapshot(events=[("log", 5)])["events"]["log"]["events"][-1]["id"] == 6, "and is not recorded")
    app = dash.Dash(__name__)
    app.layout = dash.html.Div([rt])
    bridge.init_app(app)
    client = app.server.test_client()
    body = client.get("/_swarmcast/snapshot?state=agents&event=log:4").get_json()
    check([e["id"] for e in body["events"]["log"]["events"]] == [5, 6], "the endpoint answers by id")
    check(body["states"]["agents"]["entries"] == {"a1": {"s": 1}}, "the endpoint serves the maps")
    check(client.get("/_swarmcast/snapshot?event=log").status_code == 400, "a malformed query is refused")
    body = client.get("/_swarmcast/snapshot?event=log:4@0ldep0ch").get_json()
    check(body["epoch"] == bridge.epoch and [e["id"] for e in body["events"]["log"]["events"]] == [4, 5, 6],
          "the endpoint answers another epoch's id with every event kept")
finally:
    server.stop()
bridge.emit("log", "while stopped")
check(bridge.snapshot(events=[("log", 6)])["events"]["log"]["events"][0]["data"] == "while stopped", "emits are recorded while stopped")
agents["a3"] = 3
server.start()
try:
    check(agents.snapshot() == {"a1": {"s": 1}, "a3": 3}, "state maps survive a restart")
finally:
    server.stop()
print("check_dash: all passed")
sys.exit(0)
