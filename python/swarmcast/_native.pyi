"""Type stubs of the swarmcast._native extension module (checked by mypy.stubtest).

Import from `swarmcast`, never from `swarmcast._native`.
"""

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar, final

from typing_extensions import disjoint_base

__version__: str
__all__ = [
    "ConnectionRefusedError",
    "DisconnectedError",
    "EmitError",
    "HandlerDecorator",
    "NotRunningError",
    "QueueFullError",
    "RedisEmitter",
    "Server",
    "ServerStartError",
    "StateMap",
    "SwarmcastError",
    "__version__",
    "_Ack",
    "_enable_logging",
    "_stop_all",
]

_F = TypeVar("_F", bound=Callable[..., Any])

class SwarmcastError(Exception):
    """Base class of every error swarmcast raises."""

class EmitError(SwarmcastError):
    """An emit failed: unknown namespace, unencodable payload, server not running."""

class QueueFullError(EmitError):
    """A client's bounded outbound queue is full.

    `sids` lists the sockets that did not get the event (the others did); `delivered`
    counts those that did.
    """

    sids: list[str]
    delivered: int

class DisconnectedError(EmitError):
    """The addressed socket is not connected (or disconnected before acknowledging)."""

class NotRunningError(EmitError):
    """The call needs the running server (acks wait on its runtime)."""

class ServerStartError(SwarmcastError):
    """The server could not start (address in use, invalid configuration, started twice)."""

class ConnectionRefusedError(SwarmcastError):
    """Raise it in a connect handler to refuse the client.

    `ConnectionRefusedError(message, data)` reaches the client as CONNECT_ERROR with that
    message and data.
    """

@final
class HandlerDecorator:
    """Returned by `Server.on(event)` without a handler: registers what it decorates."""

    def __call__(self, handler: _F) -> _F: ...

@final
class _Ack:
    """The answer to one client ack, handed to a handler registered with
    `Server._on_deferred` (swarmcast.AsyncServer's coroutine handlers). Answered at
    most once."""

    def send(self, value: Any = None) -> bool: ...
    def try_send(self, value: Any = None) -> bool | None: ...
    def fail(self) -> bool: ...
    @property
    def answered(self) -> bool: ...

@final
class StateMap:
    """A keyed live state map. Subscribers (clients that emit `subscribe` with
    `{"state": name}`) get `swarmcast:snapshot` then one `swarmcast:delta` per change."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> bool: ...
    def get(self, key: str, default: Any | None = None) -> Any: ...
    def snapshot(self) -> dict[str, Any]: ...
    def keys(self) -> list[str]: ...
    def __getitem__(self, key: str, /) -> Any: ...
    def __setitem__(self, key: str, value: Any, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: str, /) -> bool: ...
    def __len__(self) -> int: ...

@disjoint_base
class Server:
    """A Socket.IO (v5, Engine.IO v4) server running on threads of its own.

    Durations are in seconds (floats). `cors_allowed_origins`: `None` allows same-origin
    pages only, `"*"` any origin, or a list of origins.
    """

    def __new__(
        cls,
        host: str = "127.0.0.1",
        port: int = 5000,
        path: str = "/socket.io",
        cors_allowed_origins: str | Iterable[str] | None = None,
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1000000,
        connect_timeout: float = 45.0,
        queue_packets: int = 65536,
        queue_bytes: int = 16777216,
        max_polling_packets: int = 16,
        handler_threads: int = 4,
        worker_threads: int = 2,
        transports: Iterable[str] | None = None,
        max_attachments: int = 10,
        slow_consumer: str = "disconnect",
        emit_max_wait: float = 2.0,
        recovery: bool = False,
        allow_subscribe: str | Iterable[str] | None = None,
        publish_api: bool = False,
        api_key: str | None = None,
        shutdown_timeout: float = 5.0,
        allowed_hosts: str | Iterable[str] | None = None,
        reserved_rooms: str | Iterable[str] | None = None,
        metrics: bool = True,
        metrics_token: str | None = None,
        max_connections: int = 10000,
        listen_backlog: int = 1024,
        request_timeout: float = 10.0,
        write_timeout: float = 5.0,
        max_attachment_bytes: int = 1000000,
        max_attachment_bytes_total: int = 67108864,
        rate_limit_events: int = 0,
        rate_limit_bytes: int = 0,
        rate_limit_policy: str = "drop",
        logger: bool = False,
        engineio_logger: bool = False,
        message_queue: str | None = None,
        channel: str = "socket.io",
        emit_in_background: bool = False,
    ) -> Server: ...
    def mount_wsgi(
        self, app: Callable[..., Any], max_body: int = 16777216, threads: int = 8
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def flush(self, timeout: float | None = None) -> bool: ...
    def __enter__(self) -> Server: ...
    def __exit__(
        self,
        *_exc: type[BaseException] | BaseException | TracebackType | None,
    ) -> bool: ...
    @property
    def port(self) -> int: ...
    @property
    def host(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def on(
        self,
        event: str,
        handler: Callable[..., Any] | None = None,
        namespace: str | None = None,
    ) -> Any: ...
    def _on_deferred(
        self,
        event: str,
        handler: Callable[..., object],
        namespace: str | None = None,
    ) -> None: ...
    def event(
        self,
        handler: Callable[..., Any] | None = None,
        namespace: str | None = None,
    ) -> Any: ...
    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        volatile: bool = False,
        callback: Callable[..., Any] | None = None,
        timeout: float = 60.0,
    ) -> int | None: ...
    def _try_emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        volatile: bool = False,
    ) -> int | bool | None: ...
    def send(
        self,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        volatile: bool = False,
        callback: Callable[..., Any] | None = None,
        timeout: float = 60.0,
    ) -> int | None: ...
    def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> Any: ...
    def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None: ...
    def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None: ...
    def close_room(self, room: str, namespace: str | None = None) -> None: ...
    def rooms(self, sid: str, namespace: str | None = None) -> list[str]: ...
    def disconnect(self, sid: str, namespace: str | None = None) -> bool: ...
    def sids(self, namespace: str | None = None) -> list[str]: ...
    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, str] | None: ...
    def _after_handlers(self, sid: str, func: Callable[[], object]) -> bool: ...
    def state(self, name: str, namespace: str | None = None) -> StateMap: ...
    def metrics(self) -> dict[str, int]: ...

def _stop_all() -> None: ...
def _enable_logging(logger: bool = True, engineio_logger: bool = False) -> None: ...

@final
class RedisEmitter:
    """Publishes into a cluster of swarmcast nodes (or socket.io servers using
    `@socket.io/redis-streams-adapter`) through Redis, without a server: every node
    delivers what it emits. See docs/cluster.md."""

    def __new__(cls, url: str, stream: str = "socket.io") -> RedisEmitter: ...
    def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        volatile: bool = False,
    ) -> str:
        """Emit to every client of `namespace` on every node, or to rooms/sids `to`,
        minus `skip_sid`; returns the id of the entry in the Redis stream."""
    def set_state(self, name: str, key: str, value: Any, namespace: str | None = None) -> None:
        """Set `key` of keyed state map `name` on every node."""
    def delete_state(self, name: str, key: str, namespace: str | None = None) -> None:
        """Delete `key` of keyed state map `name` on every node."""
