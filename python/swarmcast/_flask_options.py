"""Options of the Flask-SocketIO facade that are not the server's: logging
(``logger``/``engineio_logger``), ``message_queue``'s manager, and the JSON check the
test client relies on."""

from __future__ import annotations

import json as _stdlib_json
import logging
import threading
from typing import Any


class _RedisManager:
    """``server_options["client_manager"]`` when ``message_queue`` is set (the shape
    Flask-SocketIO's is in): the Redis URL and stream, and whether this ``SocketIO`` is
    write-only. With an app, the server joins the cluster through the core's Redis
    adapter; without one, emits go through a ``swarmcast.RedisEmitter``."""

    def __init__(self, url: str, channel: str, write_only: bool) -> None:
        self.url = url
        self.channel = channel
        self.write_only = write_only
        self._emitter: Any = None
        self._lock = threading.Lock()

    def emitter(self) -> Any:
        with self._lock:
            if self._emitter is None:
                from . import RedisEmitter

                self._emitter = RedisEmitter(self.url, stream=self.channel)
            return self._emitter



def _check_json(value: Any) -> None:
    """Raise TypeError if ``value`` holds what cannot be sent (bytes can)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return None
        raise TypeError(f"object of type {type(obj).__name__!r} is not JSON serialisable")

    _stdlib_json.dumps(value, default=default)


def _configure_logging(logger_option: Any, engineio_logger: Any) -> None:
    """Flask-SocketIO's ``logger``/``engineio_logger``: ``True`` logs connections,
    disconnects and refusals (``logger``) and transport events (``engineio_logger``) at
    INFO on the ``swarmcast`` logger (a stderr handler is added if it has none); a
    ``logging.Logger`` gets those records instead (as a handler of ``swarmcast``)."""
    if not logger_option and not engineio_logger:
        return
    from ._native import _enable_logging

    _enable_logging(bool(logger_option), bool(engineio_logger))
    for option, name in ((logger_option, "swarmcast"), (engineio_logger, "swarmcast.engine")):
        if isinstance(option, logging.Logger):
            target = logging.getLogger(name)
            if not any(getattr(h, "_swarmcast_to", None) is option for h in target.handlers):
                target.addHandler(_ToLogger(option))


class _ToLogger(logging.Handler):
    """Hands swarmcast's records to an application's logger."""

    def __init__(self, to: logging.Logger) -> None:
        super().__init__()
        self._swarmcast_to = to

    def emit(self, record: logging.LogRecord) -> None:
        self._swarmcast_to.handle(record)
