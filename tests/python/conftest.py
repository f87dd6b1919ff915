"""Shared fixtures: a swarmcast server on an ephemeral 127.0.0.1 port and official
python-socketio 5.x clients over websocket and over long-polling."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import engineio
import pytest
import socketio

import swarmcast

TRANSPORTS = ["websocket", "polling"]
WAIT = 10.0


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll `predicate` until it is truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Inbox:
    """Events a client received, in the order its handlers ran."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()

    def put(self, event: str, args: tuple[Any, ...]) -> None:
        self._queue.put((event, args))

    def get(self, event: str, timeout: float = WAIT) -> tuple[Any, ...]:
        """The next arguments of `event` (other events are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no '{event}' within {timeout}s")
            try:
                name, args = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if name == event:
                return args

    def empty_for(self, seconds: float) -> bool:
        try:
            self._queue.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


class _InOrderEngineIO(engineio.Client):
    """python-engineio client that runs message handlers in its read loop instead of a
    new thread each (python-socketio#382), so handler order is wire order."""

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class InOrderClient(socketio.Client):
    """socketio.Client whose event handlers run in wire order (see _InOrderEngineIO)."""

    def _engineio_client_class(self) -> type[engineio.Client]:
        return _InOrderEngineIO


def make_client(
    inbox: Inbox | None = None, events: tuple[str, ...] = (), ordered: bool = False
) -> socketio.Client:
    client = (InOrderClient if ordered else socketio.Client)(reconnection=False)
    if inbox is not None:
        for event in events:
            client.on(event, (lambda e: lambda *args: inbox.put(e, args))(event))
    return client


def connect(
    client: socketio.Client,
    server: swarmcast.Server,
    transport: str,
    auth: Any = None,
    namespaces: list[str] | None = None,
) -> socketio.Client:
    client.connect(
        server.url,
        transports=[transport],
        auth=auth,
        namespaces=namespaces,
        wait_timeout=WAIT,
    )
    return client


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_server() -> Iterator[Callable[..., swarmcast.Server]]:
    """Build servers on ephemeral ports; every one is stopped at teardown."""
    servers: list[swarmcast.Server] = []

    def build(**options: Any) -> swarmcast.Server:
        options.setdefault("port", 0)
        server = swarmcast.Server(**options)
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()


@pytest.fixture
def clients() -> Iterator[list[socketio.Client]]:
    """Clients registered here are disconnected at teardown."""
    made: list[socketio.Client] = []
    yield made
    for client in made:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - best effort teardown
            pass


class Recorder:
    """Thread-safe record of what server handlers saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[Any, ...]] = []
        self.event = threading.Event()

    def __call__(self, *args: Any) -> None:
        with self.lock:
            self.calls.append(args)
        self.event.set()

    def wait(self, n: int = 1, timeout: float = WAIT) -> list[tuple[Any, ...]]:
        wait_for(lambda: len(self.calls) >= n, timeout, f"{n} handler call(s)")
        with self.lock:
            return list(self.calls)


def free_port() -> int:
    """A free 127.0.0.1 port (for a server started in another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def python_script(
    *args: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Run `python ARGS...` (an example app, with `env` added to the environment) for
    the duration of the block; it is terminated (then killed) at the end."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
