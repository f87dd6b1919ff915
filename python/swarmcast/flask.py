"""A Flask-SocketIO-compatible facade over swarmcast.

Moving an application is an import change::

    from flask_socketio import SocketIO, emit, join_room      # before
    from swarmcast.flask import SocketIO, emit, join_room     # after

Handlers keep Flask-SocketIO's conventions: they receive the event's arguments only,
find the client in ``flask.request.sid`` / ``flask.request.namespace``, run inside an
application and request context, answer acks with their return value, and may use the
module-level ``emit``, ``send``, ``join_room``, ... helpers.

swarmcast is its own HTTP server (in Rust): ``run(app, host, port)`` serves the Flask
application's routes (WSGI, on worker threads) and Socket.IO on the same port, as
Flask-SocketIO does. docs/python.md lists every difference.
"""

from __future__ import annotations

import inspect
import io
import logging
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qs

import flask
from flask.sessions import SessionMixin

from . import ConnectionRefusedError, NotRunningError, Server, _json
from ._flask_options import _RedisManager, _check_json, _configure_logging
from ._testclient import TOKEN_PARAM, SocketIOTestClient

__all__ = [
    "ConnectionRefusedError",
    "Namespace",
    "SocketIO",
    "call",
    "close_room",
    "disconnect",
    "emit",
    "join_room",
    "leave_room",
    "rooms",
    "send",
]

_F = TypeVar("_F", bound=Callable[..., Any])

logger = logging.getLogger("swarmcast")

# Flask-SocketIO options that configure python-socketio internals swarmcast does not have;
# accepted (so that an app's SocketIO(...) line stays as it is) and ignored.
_IGNORED_OPTIONS = {
    "always_connect",
    "async_handlers",
    "cookie",
    "http_compression",
    "compression_threshold",
    "monitor_clients",
    "upgrade_timeout",
    "allow_upgrades",
    "namespaces",
    "serializer",
}

_RENAMED_OPTIONS = {
    # Flask-SocketIO / python-engineio name -> swarmcast.Server name
    "max_http_buffer_size": "max_payload",
    "resource": "path",
}


# Options the facade itself reads (not swarmcast.Server's).
_FACADE_OPTIONS = {"async_mode", "json", "manage_session", "client_manager", "write_only"}


class _ManagedSession(dict, SessionMixin):  # type: ignore[type-arg]
    """The per-client user session Socket.IO handlers see (as in Flask-SocketIO)."""


class _Reason:
    """Disconnect reasons, as the core reports them (Socket.IO's strings)."""

    CLIENT_DISCONNECT = "client namespace disconnect"
    SERVER_DISCONNECT = "server namespace disconnect"
    PING_TIMEOUT = "ping timeout"
    TRANSPORT_CLOSE = "transport close"
    TRANSPORT_ERROR = "transport error"


def _accepts(func: Callable[..., Any], n: int) -> bool:
    try:
        inspect.signature(func).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): assume it does
        return True
    return True


class Namespace:
    """Class-based namespace: methods ``on_<event>`` handle ``<event>``."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        self.socketio: SocketIO | None = None

    def _set_socketio(self, socketio: SocketIO) -> None:
        self.socketio = socketio

    def has_handler(self, event: str) -> bool:
        return hasattr(self, "on_" + event)

    def trigger_event(self, event: str, *args: Any) -> Any:
        handler_name = "on_" + event
        if not hasattr(self, handler_name):
            return None
        handler = getattr(self, handler_name)
        if event == "connect" and not _accepts(handler, len(args)):
            return handler()
        if event == "disconnect" and not _accepts(handler, len(args)):
            return handler()
        return handler(*args)

    def emit(self, event: str, data: Any = None, **kwargs: Any) -> Any:
        assert self.socketio is not None
        kwargs.setdefault("namespace", self.namespace)
        return self.socketio.emit(event, data, **kwargs)

    def send(self, data: Any, **kwargs: Any) -> Any:
        assert self.socketio is not None
        kwargs.setdefault("namespace", self.namespace)
        return self.socketio.send(data, **kwargs)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        assert self.socketio is not None
        self.socketio.close_room(room, namespace=namespace or self.namespace)


class SocketIO:
    """Flask-SocketIO's ``SocketIO`` over a swarmcast ``Server``.

    ``SocketIO(app, **options)`` or ``SocketIO(**options)`` then ``init_app(app)``.
    Options are swarmcast.Server's (``cors_allowed_origins``, ``ping_interval``,
    ``ping_timeout``, ``queue_packets``, ``handler_threads``, ...) plus
    Flask-SocketIO's names for them (``max_http_buffer_size``, ``resource``); options
    only python-socketio has (``async_mode``, ``message_queue``, ...) are ignored with a
    log line.
    """

    reason = _Reason

    def __init__(self, app: flask.Flask | None = None, **kwargs: Any) -> None:
        self.app: flask.Flask | None = None
        self.server: Server | None = None
        self.server_options: dict[str, Any] = {}
        self.handlers: list[tuple[str, Callable[..., Any], str]] = []
        self.namespace_handlers: list[Namespace] = []
        self.exception_handlers: dict[str, Callable[[BaseException], Any]] = {}
        self.default_exception_handler: Callable[[BaseException], Any] | None = None
        self._sessions: dict[str, _ManagedSession] = {}
        self._sessions_lock = threading.Lock()
        self._stopped = threading.Event()
        self._environs: dict[str, dict[str, Any]] = {}
        self._test_environs: dict[str, dict[str, Any]] = {}
        self._eio_environs: dict[str, dict[str, Any]] = {}
        # Exceptions of handlers run for test clients, by sid, for the client to raise.
        self._test_errors: dict[str, list[BaseException]] = {}
        self.manage_session = True
        self.async_mode = "threading"
        self.json: Any = None
        if app is not None:
            self.init_app(app, **kwargs)
        else:
            self._set_options({**kwargs, "write_only": True})

    # -- setup -----------------------------------------------------------------------

    def init_app(self, app: flask.Flask | None, **kwargs: Any) -> None:
        if app is None:  # Flask-SocketIO allows it: a write-only emitter
            self._set_options({**kwargs, "write_only": True})
            return
        if not hasattr(app, "extensions"):
            app.extensions = {}  # pragma: no cover
        app.extensions["socketio"] = self
        self.app = app
        self._set_options({**kwargs, "write_only": False})

    def _set_options(self, options: dict[str, Any]) -> None:
        """Keep the options; apply at once those the facade reads itself."""
        mode = options.get("async_mode")
        if mode not in (None, "threading"):
            raise ValueError(
                f"async_mode={mode!r}: swarmcast runs its own threads (Rust), so only "
                "'threading' applies; remove the option (eventlet/gevent monkey "
                "patching is not needed)"
            )
        if "manage_session" in options:
            self.manage_session = bool(options["manage_session"])
        if options.get("json") is not None:
            self.json = options["json"]
        _configure_logging(options.get("logger"), options.get("engineio_logger"))
        self.server_options.update(options)
        url = self.server_options.get("message_queue")
        if url:
            # Flask-SocketIO's shape: a manager that is write-only without an app.
            self.server_options["client_manager"] = _RedisManager(
                url, self.server_options.get("channel", "socket.io"),
                bool(self.server_options.get("write_only")),
            )

    def _server_kwargs(self, host: str | None, port: int | None) -> dict[str, Any]:
        options = dict(self.server_options)
        out: dict[str, Any] = {}
        for name, value in options.items():
            name = _RENAMED_OPTIONS.get(name, name)
            if name in _IGNORED_OPTIONS:
                logger.info("swarmcast.flask: option %r has no effect", name)
                continue
            if name in _FACADE_OPTIONS:
                continue
            out[name] = value
        if "path" in out and not str(out["path"]).startswith("/"):
            out["path"] = "/" + str(out["path"])
        if host is not None:
            out["host"] = host
        if port is not None:
            out["port"] = port
        return out

    def _build_server(self, host: str | None = None, port: int | None = None) -> Server:
        if self.server is not None:
            return self.server
        server = _FlaskServer(**self._server_kwargs(host, port))
        server.environ = self._eio_environs
        namespaces = {"/"}
        for message, handler, namespace in self.handlers:
            server.on(message, handler, namespace=namespace)
            namespaces.add(namespace)
        # Every namespace keeps a disconnect hook so that per-client sessions are freed
        # (user disconnect handlers and class-based namespaces free them themselves). A
        # namespace without one falls back to the catch-all namespace's, if any.
        has_disconnect = {n for m, _, n in self.handlers if m == "disconnect"}
        for namespace in namespaces:
            if namespace in has_disconnect or ("*" in has_disconnect and namespace != "*"):
                continue
            forget = self._forget_any if namespace == "*" else self._forget_session
            server.on("disconnect", forget, namespace=namespace)
        for ns_handler in self.namespace_handlers:
            self._install_namespace(server, ns_handler)
        self.server = server
        return server

    def _forget_session(self, sid: str, reason: str = "") -> None:
        with self._sessions_lock:
            self._sessions.pop(sid, None)
            environ = self._environs.pop(sid, None)
            if environ is not None:
                self._eio_environs.pop(environ.get("swarmcast.eio_sid") or sid, None)

    def _forget_any(self, namespace: str, sid: str, reason: str = "") -> None:
        self._forget_session(sid, reason)

    # -- handlers --------------------------------------------------------------------

    def on(self, message: str, namespace: str | None = None) -> Callable[[_F], _F]:
        """Decorator registering a handler for ``message`` (``'connect'``,
        ``'disconnect'``, ``'*'`` or an event name)."""
        namespace = namespace or "/"

        def decorator(handler: _F) -> _F:
            def _handler(*args: Any) -> Any:
                # The native server passes ([event,] [namespace,] sid, *args): the event
                # for the catch-all event "*", the namespace on the catch-all namespace
                # "*". As in Flask-SocketIO, a catch-all event handler gets the event
                # name first; the namespace is in request.namespace only.
                lead: list[Any] = []
                if message == "*":
                    lead.append(args[0])
                    args = args[1:]
                real_ns = namespace
                if namespace == "*":
                    real_ns = args[0]
                    args = args[1:]
                sid, rest = args[0], args[1:]
                return self._handle_event(handler, message, real_ns, sid, *lead, *rest)

            _handler.__name__ = getattr(handler, "__name__", "handler")
            self.handlers.append((message, _handler, namespace))
            if self.server is not None:
                self.server.on(message, _handler, namespace=namespace)
            return handler

        return decorator

    def on_event(
        self, message: str, handler: Callable[..., Any], namespace: str | None = None
    ) -> None:
        self.on(message, namespace=namespace)(handler)

    def event(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]):
            return self.on(args[0].__name__)(args[0])

        def set_handler(handler: _F) -> _F:
            return self.on(handler.__name__, *args, **kwargs)(handler)

        return set_handler

    def on_error(self, namespace: str | None = None) -> Callable[[_F], _F]:
        namespace = namespace or "/"

        def decorator(exception_handler: _F) -> _F:
            if not callable(exception_handler):
                raise ValueError("exception_handler must be callable")
            self.exception_handlers[namespace] = exception_handler
            return exception_handler

        return decorator

    def on_error_default(self, exception_handler: _F) -> _F:
        if not callable(exception_handler):
            raise ValueError("exception_handler must be callable")
        self.default_exception_handler = exception_handler
        return exception_handler

    def on_namespace(self, namespace_handler: Namespace) -> None:
        if not isinstance(namespace_handler, Namespace):
            raise ValueError("Not a namespace instance.")
        namespace_handler._set_socketio(self)
        self.namespace_handlers.append(namespace_handler)
        if self.server is not None:
            self._install_namespace(self.server, namespace_handler)

    def _install_namespace(self, server: Server, ns_handler: Namespace) -> None:
        ns = ns_handler.namespace

        trigger = ns_handler.trigger_event

        def connect(sid: str, auth: Any = None) -> Any:
            return self._handle_event(partial(trigger, "connect"), "connect", ns, sid, auth)

        def disconnect(sid: str, reason: str) -> Any:
            return self._handle_event(
                partial(trigger, "disconnect"), "disconnect", ns, sid, reason
            )

        def any_event(event: str, sid: str, *args: Any) -> Any:
            return self._handle_event(partial(trigger, event), event, ns, sid, *args)

        server.on("connect", connect, namespace=ns)
        server.on("disconnect", disconnect, namespace=ns)
        server.on("*", any_event, namespace=ns)

    def _session_for(self, sid: str) -> _ManagedSession:
        with self._sessions_lock:
            session = self._sessions.get(sid)
        if session is not None:
            return session
        initial = _ManagedSession(flask.session)  # the page's session, from its cookie
        with self._sessions_lock:
            return self._sessions.setdefault(sid, initial)

    def _environ_for(self, sid: str, namespace: str) -> dict[str, Any]:
        """The WSGI environ of the client's handshake request (kept until it leaves):
        its query string, headers, cookies and address, as Flask-SocketIO exposes
        them; for a ``test_client``, the environ that client built."""
        with self._sessions_lock:
            environ = self._environs.get(sid)
        if environ is not None:
            return environ
        native = self.server.get_environ(sid, namespace) if self.server is not None else None
        environ = dict(native or {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/"})
        query = environ.get("QUERY_STRING", "")
        if TOKEN_PARAM in query:
            token = parse_qs(query).get(TOKEN_PARAM, [""])[0]
            test_environ = self._test_environs.get(token)
            if test_environ is not None:
                environ = test_environ
                environ["swarmcast.test_client"] = True
                environ["swarmcast.eio_sid"] = (native or {}).get("swarmcast.eio_sid")
        environ.setdefault("SERVER_NAME", "localhost")
        environ.setdefault("SERVER_PORT", "80")
        environ.setdefault("wsgi.url_scheme", "http")
        environ.setdefault("wsgi.input", io.BytesIO())
        environ.setdefault("wsgi.errors", sys.stderr)
        environ.setdefault("wsgi.version", (1, 0))
        environ.setdefault("wsgi.multithread", True)
        environ.setdefault("wsgi.multiprocess", False)
        environ.setdefault("wsgi.run_once", False)
        if native is not None:  # only a connected client's is kept
            with self._sessions_lock:
                environ = self._environs.setdefault(sid, environ)
                self._eio_environs[environ.get("swarmcast.eio_sid") or sid] = environ
        return environ

    def _handle_event(
        self,
        handler: Callable[..., Any],
        message: str | None,
        namespace: str,
        sid: str,
        *args: Any,
    ) -> Any:
        app = self.app
        if app is None:
            raise RuntimeError("SocketIO has no Flask app: call init_app(app)")
        if self.json is not None and message != "disconnect" and args:
            # Decoded with the user's module too, as Flask-SocketIO does (its packets
            # go through json.loads): the auth, event arguments and acks.
            args = _json.decode(self.json, args)
        environ = self._environ_for(sid, namespace)
        with app.request_context(environ):
            if self.manage_session:
                # A per-client session, a copy of the HTTP session (cookie) at connect.
                session_obj = self._session_for(sid)
                environ["saved_session"] = session_obj
                _install_session(session_obj)
            flask.request.sid = sid  # type: ignore[attr-defined]
            flask.request.namespace = namespace  # type: ignore[attr-defined]
            flask.request.event = {"message": message, "args": args}  # type: ignore[attr-defined]
            try:
                if message == "connect":
                    auth = args[0] if args else None
                    ret = handler(auth) if _accepts(handler, 1) else handler()
                elif message == "disconnect":
                    self._forget_session(sid)
                    reason = args[0] if args else None
                    ret = handler(reason) if _accepts(handler, 1) else handler()
                else:
                    ret = handler(*args)
                    if self.json is not None and ret is not None:
                        ret = _json.encode(self.json, ret)  # an ack, as emits are
                if environ.get("swarmcast.test_client") and ret is not None:
                    _check_json(ret)  # what the native ack would refuse, raised here
            except ConnectionRefusedError:
                raise
            except Exception as exc:
                err_handler = self.exception_handlers.get(
                    namespace, self.default_exception_handler
                )
                try:
                    if err_handler is None:
                        raise
                    return err_handler(exc)
                except Exception as final:
                    if environ.get("swarmcast.test_client"):
                        self._test_errors.setdefault(sid, []).append(final)
                    raise
            return ret

    # -- server-side API -------------------------------------------------------------

    def _require_server(self) -> Server:
        if self.server is None:
            raise RuntimeError(
                "the Socket.IO server is not running yet: call socketio.run() or "
                "socketio.start() first"
            )
        return self.server

    def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Emit to every client (``to``/``room`` narrows, ``skip_sid`` or
        ``include_self=False`` leaves out)."""
        namespace = kwargs.pop("namespace", None) or "/"
        to = kwargs.pop("to", None) or kwargs.pop("room", None)
        kwargs.pop("room", None)
        include_self = kwargs.pop("include_self", True)
        skip_sid = kwargs.pop("skip_sid", None)
        if not include_self and not skip_sid:
            skip_sid = flask.request.sid  # type: ignore[attr-defined]
        callback = kwargs.pop("callback", None)
        kwargs.pop("ignore_queue", None)
        kwargs.pop("broadcast", None)
        if kwargs:
            raise TypeError(f"emit() got unexpected keyword arguments {sorted(kwargs)}")
        if callback is not None and flask.has_request_context():
            sid = getattr(flask.request, "sid", None)
            original_namespace = getattr(flask.request, "namespace", namespace)
            original_callback = callback
            if sid:

                def callback(*cb_args: Any) -> Any:
                    return self._handle_event(
                        original_callback, None, original_namespace, sid, *cb_args
                    )

        if self.server is None and self._write_only() is not None:
            if callback is not None:
                raise ValueError("a write-only SocketIO (message_queue, no app) cannot take callbacks")
            data = args[0] if len(args) == 1 else (tuple(args) if args else None)
            self._write_only().emit(event, data, to=to, skip_sid=skip_sid, namespace=namespace)
            return
        if self.server is None:
            raise NotRunningError(
                "the Socket.IO server is not started: call socketio.run(), "
                "socketio.start() or socketio.test_client() first"
            )
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        if self.json is not None:
            data = self._through_json(data)
        self.server.emit(
            event, data, to=to, skip_sid=skip_sid, namespace=namespace, callback=callback
        )

    def _write_only(self) -> Any:
        """The Redis emitter of a write-only ``SocketIO(message_queue=...)`` (no app):
        it publishes into the cluster, whose servers deliver."""
        manager = self.server_options.get("client_manager")
        if manager is None or not manager.write_only:
            return None
        return manager.emitter()

    def _through_json(self, data: Any) -> Any:
        """``json=`` given: encode with it (datetimes, UUIDs, ... as it decides), so the
        client gets exactly what ``json.dumps`` makes. Binary data stays binary."""
        return _json.encode(self.json, data)

    def test_client(
        self,
        app: flask.Flask,
        namespace: str | None = None,
        query_string: str | None = None,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        flask_test_client: Any = None,
    ) -> SocketIOTestClient:
        """A test client, as Flask-SocketIO's: connects at once (starting the Socket.IO
        server on 127.0.0.1 and a free port if it is not running) and makes ``emit``,
        ``send``, ``get_received`` and ``disconnect`` synchronous."""
        if self.app is None:
            self.init_app(app)
        return SocketIOTestClient(
            app,
            self,
            namespace=namespace,
            query_string=query_string,
            headers=headers,
            auth=auth,
            flask_test_client=flask_test_client,
        )

    def _test_server(self) -> Server:
        if self.server is not None and self.server.running:
            return self.server
        options = self.server_options
        return self.start(options.get("host", "127.0.0.1"), options.get("port", 0))

    def call(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Emit to one client (``to=sid``) and wait for its acknowledgement."""
        namespace = kwargs.pop("namespace", None) or "/"
        to = kwargs.pop("to", None) or kwargs.pop("room", None)
        timeout = kwargs.pop("timeout", 60)
        kwargs.pop("ignore_queue", None)
        data = args[0] if len(args) == 1 else (tuple(args) if args else None)
        return self._require_server().call(
            event, data, to=to, namespace=namespace, timeout=timeout
        )

    def send(
        self,
        data: Any,
        json: bool = False,
        namespace: str | None = None,
        to: Any = None,
        callback: Callable[..., Any] | None = None,
        include_self: bool = True,
        skip_sid: Any = None,
        **kwargs: Any,
    ) -> None:
        skip_sid = flask.request.sid if not include_self else skip_sid  # type: ignore[attr-defined]
        self.emit(
            "json" if json else "message",
            data,
            namespace=namespace,
            to=to,
            skip_sid=skip_sid,
            callback=callback,
            **kwargs,
        )

    def close_room(self, room: str, namespace: str | None = None) -> None:
        if self.server is not None:
            self.server.close_room(room, namespace=namespace or "/")

    # -- running ---------------------------------------------------------------------

    def start(self, host: str | None = None, port: int | None = None) -> Server:
        """Start serving Socket.IO (on threads of its own) and return at once.

        For applications whose Flask side is served by something else (gunicorn,
        ``flask run``): the Socket.IO endpoint is on this port, not the WSGI server's.
        """
        server = self._build_server(host, port)
        if not server.running:
            server.start()
        self._stopped.clear()
        return server

    def run(
        self,
        app: flask.Flask | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Serve the Flask app and Socket.IO on one port until interrupted, as
        Flask-SocketIO's ``run`` does: swarmcast serves the app's routes itself (WSGI,
        on worker threads), so the page and its Socket.IO client share one origin.

        ``debug`` and ``use_reloader`` (default: ``debug``) run Werkzeug's reloader:
        only the serving child process starts the server. ``log_output``,
        ``allow_unsafe_werkzeug``, ``reloader_options`` and ``extra_files`` are
        accepted (``extra_files`` is given to the reloader).
        """
        if app is not None and self.app is None:
            self.init_app(app)
        app = app or self.app
        if app is None:
            raise RuntimeError("run() needs the Flask app")
        if host is None:
            host = "127.0.0.1"
        if port is None:
            server_name = app.config.get("SERVER_NAME")
            if server_name and ":" in server_name:
                port = int(server_name.rsplit(":", 1)[1])
            else:
                port = 5000
        debug = kwargs.pop("debug", app.debug)
        use_reloader = kwargs.pop("use_reloader", debug)
        extra_files = kwargs.pop("extra_files", None)
        reloader_options = kwargs.pop("reloader_options", {}) or {}
        for accepted in ("log_output", "allow_unsafe_werkzeug"):
            kwargs.pop(accepted, None)
        app.debug = debug

        def serve() -> None:
            server = self._build_server(host, port)
            if not server.running:
                server.mount_wsgi(app)
                server.start()
            self._stopped.clear()
            print(f" * swarmcast: serving Flask app '{app.name}' and Socket.IO on {server.url}")
            try:
                while not self._stopped.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            finally:
                self.stop()

        if use_reloader:
            from werkzeug._reloader import run_with_reloader

            # The parent watches files and restarts the child; only the child (where
            # WERKZEUG_RUN_MAIN is set) binds the port and serves.
            run_with_reloader(serve, extra_files=extra_files, **reloader_options)
        else:
            serve()

    def stop(self) -> None:
        """Stop the server (``run`` returns)."""
        self._stopped.set()
        if self.server is not None:
            self.server.stop()

    def start_background_task(
        self, target: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> threading.Thread:
        """Run ``target(*args, **kwargs)`` on a daemon thread; returns the thread."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def sleep(self, seconds: float = 0) -> None:
        time.sleep(seconds)


class _FlaskServer(Server):
    """The facade's server: a ``swarmcast.Server`` with python-socketio's ``environ``
    (Engine.IO session id -> the WSGI environ handlers see, incl. ``saved_session``)."""

    environ: dict[str, dict[str, Any]]


def _install_session(session_obj: _ManagedSession) -> None:
    """Make ``flask.session`` the client's managed session (as Flask-SocketIO does)."""
    ctx: Any
    if hasattr(flask.globals, "app_ctx") and hasattr(flask.globals.app_ctx, "session"):
        ctx = flask.globals.app_ctx._get_current_object()  # type: ignore[attr-defined]  # Flask >= 3.2
    else:
        ctx = flask.globals.request_ctx._get_current_object()  # type: ignore[attr-defined]
    if hasattr(ctx, "_session"):
        ctx._session = session_obj  # Flask >= 3.1.3
    else:
        ctx.session = session_obj


def _socketio() -> SocketIO:
    return flask.current_app.extensions["socketio"]  # type: ignore[no-any-return]


def emit(event: str, *args: Any, **kwargs: Any) -> None:
    """Emit from a handler: to the sender unless ``to``/``room`` or ``broadcast=True``."""
    namespace = kwargs.pop("namespace", None) or flask.request.namespace  # type: ignore[attr-defined]
    broadcast = kwargs.pop("broadcast", False)
    to = kwargs.pop("to", None) or kwargs.pop("room", None)
    kwargs.pop("room", None)
    if to is None and not broadcast:
        to = flask.request.sid  # type: ignore[attr-defined]
    _socketio().emit(event, *args, namespace=namespace, to=to, **kwargs)


def send(message: Any, **kwargs: Any) -> None:
    """Send a ``message`` (``json=True``: a ``json``) event from a handler."""
    json = kwargs.pop("json", False)
    namespace = kwargs.pop("namespace", None) or flask.request.namespace  # type: ignore[attr-defined]
    broadcast = kwargs.pop("broadcast", False)
    to = kwargs.pop("to", None) or kwargs.pop("room", None)
    kwargs.pop("room", None)
    if to is None and not broadcast:
        to = flask.request.sid  # type: ignore[attr-defined]
    _socketio().send(message, json=json, namespace=namespace, to=to, **kwargs)


def call(event: str, *args: Any, **kwargs: Any) -> Any:
    """Emit to a client (the sender by default) and wait for its acknowledgement."""
    namespace = kwargs.pop("namespace", None) or flask.request.namespace  # type: ignore[attr-defined]
    to = kwargs.pop("to", None) or kwargs.pop("room", None)
    if to is None:
        to = flask.request.sid  # type: ignore[attr-defined]
    return _socketio().call(event, *args, namespace=namespace, to=to, **kwargs)


def join_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    sid = sid or flask.request.sid  # type: ignore[attr-defined]
    namespace = namespace or flask.request.namespace  # type: ignore[attr-defined]
    _socketio()._require_server().enter_room(sid, room, namespace=namespace)


def leave_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    sid = sid or flask.request.sid  # type: ignore[attr-defined]
    namespace = namespace or flask.request.namespace  # type: ignore[attr-defined]
    _socketio()._require_server().leave_room(sid, room, namespace=namespace)


def close_room(room: str, namespace: str | None = None) -> None:
    namespace = namespace or flask.request.namespace  # type: ignore[attr-defined]
    _socketio()._require_server().close_room(room, namespace=namespace)


def rooms(sid: str | None = None, namespace: str | None = None) -> list[str]:
    sid = sid or flask.request.sid  # type: ignore[attr-defined]
    namespace = namespace or flask.request.namespace  # type: ignore[attr-defined]
    return _socketio()._require_server().rooms(sid, namespace=namespace)


def disconnect(sid: str | None = None, namespace: str | None = None, silent: bool = False) -> bool:
    sid = sid or flask.request.sid  # type: ignore[attr-defined]
    namespace = namespace or flask.request.namespace  # type: ignore[attr-defined]
    return _socketio()._require_server().disconnect(sid, namespace=namespace)
