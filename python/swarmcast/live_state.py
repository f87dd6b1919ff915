"""Keep a swarmcast keyed state map in sync on a python-socketio client.

    import socketio
    from swarmcast.live_state import LiveState

    sio = socketio.Client()
    agents = LiveState(sio, "agents")
    sio.connect("http://127.0.0.1:5000")
    agents.wait_ready()
    print(agents.entries)          # always the server's map

Wire format: docs/protocol.md. python-socketio runs each incoming event on a thread of
its own (python-socketio#382), so snapshot and deltas may be *handled* out of wire
order. Versions make that harmless: a delta is applied only if it is newer than the
snapshot and than what the key already reflects, and deltas that arrive before their
snapshot wait for it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

__all__ = ["LiveState"]


class LiveState:
    """The client side of one state map."""

    def __init__(
        self,
        sio: Any,
        map: str,
        keys: Optional[List[str]] = None,
        namespace: str = "/",
        on_change: Optional[Callable[[Dict[str, Any], Dict[str, Any]], None]] = None,
    ) -> None:
        self.sio = sio
        self.map = map
        self.keys = keys
        self.namespace = namespace
        self.on_change = on_change
        self.entries: Dict[str, Any] = {}
        self.version = 0
        self._key_versions: Dict[str, int] = {}
        self._early: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        sio.on("swarmcast:snapshot", self._on_snapshot, namespace=namespace)
        sio.on("swarmcast:delta", self._on_delta, namespace=namespace)
        sio.on("connect", self._on_connect, namespace=namespace)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until the first snapshot arrived."""
        return self._ready.wait(timeout)

    def subscribe(self) -> None:
        self._ready.clear()
        request: Dict[str, Any] = {"state": self.map}
        if self.keys is not None:
            request["keys"] = list(self.keys)
        self.sio.emit("subscribe", request, namespace=self.namespace)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self.entries.get(key, default)

    def snapshot(self) -> Dict[str, Any]:
        """A copy of the map as it stands."""
        with self._lock:
            return dict(self.entries)

    def close(self) -> None:
        self.sio.emit("unsubscribe", {"state": self.map}, namespace=self.namespace)

    # -- handlers (any thread) -------------------------------------------------

    def _on_connect(self, *args: Any) -> None:
        # python-socketio has no session recovery: every connect starts from a snapshot.
        self.subscribe()

    def _on_snapshot(self, msg: Any, *offset: Any) -> None:
        if not isinstance(msg, dict) or msg.get("map") != self.map:
            return
        with self._lock:
            self.entries = dict(msg.get("entries") or {})
            self.version = int(msg.get("version", 0))
            self._key_versions = {}
            early, self._early = self._early, []
            for delta in early:
                self._apply(delta)
            self._ready.set()
            entries = dict(self.entries)
        if self.on_change:
            self.on_change(entries, {"snapshot": True})

    def _on_delta(self, msg: Any, *offset: Any) -> None:
        if not isinstance(msg, dict) or msg.get("map") != self.map:
            return
        with self._lock:
            if not self._ready.is_set():
                self._early.append(msg)
                return
            applied = self._apply(msg)
            entries = dict(self.entries) if applied else None
        if applied and self.on_change and entries is not None:
            self.on_change(entries, msg)

    def _apply(self, msg: Dict[str, Any]) -> bool:
        version = int(msg.get("version", 0))
        key = msg.get("key")
        if not isinstance(key, str) or version <= self.version:
            return False  # already part of the snapshot
        if version <= self._key_versions.get(key, 0):
            return False  # an older change of this key, handled late
        self._key_versions[key] = version
        if msg.get("deleted"):
            self.entries.pop(key, None)
        else:
            self.entries[key] = msg.get("value")
        return True
