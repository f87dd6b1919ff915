"""``swarmcast.AsyncServer``: the native ``swarmcast.Server`` driven from asyncio.

One core: this module only converts and forwards. The native dispatcher threads call
the bridges below; a bridge hands the coroutine to the event loop
(``call_soon_threadsafe``) and returns, so no handler thread waits on a coroutine
(except a connect handler's, whose decision the connection waits for). Everything the
native layer may block in (an emit waiting under backpressure, at most
``emit_max_wait``; start and stop) runs on a small thread pool of this server, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar, overload

from . import _json
from ._native import Server, _Ack

__all__ = ["AsyncServer"]

logger = logging.getLogger("swarmcast")

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

#: Threads of the pool that runs what may block (emits under backpressure, start,
#: stop): a slow client holds one for at most ``emit_max_wait``.
_OFFLOAD_THREADS = 4


def _is_async(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` makes a coroutine (functions, methods, partials, and
    objects with an ``async def __call__``)."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - the method, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def _accepts(func: Callable[..., Any], n: int) -> bool:
    """Whether ``func`` takes ``n`` positional arguments (True when unknown)."""
    try:
        inspect.signature(func).bind(*([None] * n))
    except TypeError:
        return False
    except ValueError:  # no signature (builtins)
        return True
    return True


class AsyncServer:
    """A Socket.IO server whose handlers may be coroutines (python-socketio's
    ``socketio.AsyncServer`` is the model).

        sio = swarmcast.AsyncServer(port=5000, cors_allowed_origins="*")

        @sio.event
        async def connect(sid, environ_or_auth): ...

        @sio.on("chat")
        async def chat(sid, message):
            await sio.emit("chat", message, skip_sid=sid)
            return "ok"  # answers the client's ack

        async def main():
            async with sio:  # await sio.start() ... await sio.stop()
                await sio.emit("tick", {"seq": 1})

    Options (keyword only) are those of ``swarmcast.Server``, plus ``async_handlers``
    and ``json``. It runs on the event loop that is running when ``start()`` is awaited
    (a FastAPI/Starlette lifespan, ``asyncio.run``), or on a loop of its own in a
    thread of its own (``start_in_thread()``).

    **Handlers.** ``async def`` handlers run on the event loop; plain functions run on
    swarmcast's handler threads as with ``swarmcast.Server`` (use ``sio.server``, the
    native server, for blocking calls there). Event handlers answer the client's ack
    with their return value (``None``: no argument, a tuple: several). A handler that
    raises is logged on the ``swarmcast`` logger and the ack, if one was asked for, is
    answered with ``{"error": "internal server error"}``.

    **Ordering (per socket).** The native layer delivers one socket's events in the
    order they arrived. With ``async_handlers=True`` (the default, as in
    python-socketio) each event runs as a task of its own: the tasks of one socket are
    *started* in arrival order (each runs up to its first ``await`` before the next one
    starts) and then run concurrently, so they may finish, and acks may leave, in any
    order. With ``async_handlers=False`` one socket's handlers run one after the other:
    each starts when the one before it returned and its ack was queued, so acks leave
    in arrival order (other sockets are not held up). The connect handler finishes
    before any event handler of that socket starts; the disconnect handler starts after
    all of them started (``async_handlers=False``: after all of them finished).

    ``json``: a module with ``dumps``/``loads`` used to encode what is emitted and to
    decode handler arguments and acks (see ``swarmcast._json`` for the exact rules).
    """

    def __init__(self, *, async_handlers: bool = True, json: Any = None, **options: Any) -> None:
        if json is not None and not (callable(getattr(json, "dumps", None)) and callable(getattr(json, "loads", None))):
            raise TypeError("json= needs a module (or object) with dumps() and loads()")
        #: The native server underneath. Its methods block (``emit`` may wait under
        #: backpressure): call them from sync handlers and other threads, not from the
        #: event loop.
        self.server = Server(**options)
        self.async_handlers = bool(async_handlers)
        self.json: Any = json
        self._connect_timeout = float(options.get("connect_timeout", 45.0))
        self._shutdown_timeout = float(options.get("shutdown_timeout", 5.0))
        # With emit_max_wait=0 no native call waits: they run on the loop directly.
        # With emit_in_background a disconnect waits for the emits handed off before it.
        self._may_block = float(options.get("emit_max_wait", 2.0)) > 0 or bool(
            options.get("emit_in_background", False)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=_OFFLOAD_THREADS, thread_name_prefix="swarmcast-async"
        )
        # The last task of each socket (async_handlers=False), and every task started
        # here (strong references: the loop keeps only weak ones).
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- the loop and the server's lifecycle ------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the coroutine handlers run on (``None`` before ``start()``)."""
        return self._loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        current = self._loop
        if current is not None and current is not loop and not current.is_closed() and self.server.running:
            raise RuntimeError("this AsyncServer is running on another event loop: stop() it there first")
        self._loop = loop

    async def start(self) -> None:
        """Bind and serve; handlers run on the running event loop. Returns once listening."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        await loop.run_in_executor(self._executor, self.server.start)

    async def stop(self) -> None:
        """Close every connection (disconnect handlers run), then wait (at most
        ``shutdown_timeout``) for the handler tasks still running. Idempotent."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.server.stop)
        # Let the disconnect handlers the stop scheduled get onto the loop.
        await asyncio.sleep(0)
        pending = {t for t in self._tasks if not t.done() and t is not asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=self._shutdown_timeout)

    async def __aenter__(self) -> AsyncServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> asyncio.AbstractEventLoop:
        """Start on an event loop of its own, run by a daemon thread of its own, for
        programs without one; returns that loop. ``stop_in_thread()`` ends both."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("start_in_thread() was called already: stop_in_thread() first")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="swarmcast-asyncio", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
            raise
        self._thread = thread
        return loop

    def stop_in_thread(self) -> None:
        """Stop the server started by ``start_in_thread()``, then its loop and thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(self._shutdown_timeout + 10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
            self._thread = None

    def __enter__(self) -> AsyncServer:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_in_thread()

    @property
    def running(self) -> bool:
        return self.server.running

    @property
    def port(self) -> int:
        """The bound port once started (useful with ``port=0``)."""
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        """``http://host:port``, what clients connect to."""
        return self.server.url

    def __repr__(self) -> str:
        return f"<swarmcast.AsyncServer {self.server.url} ({'running' if self.running else 'not running'})>"

    # -- registration -----------------------------------------------------------------

    @overload
    def on(self, event: str, handler: None = None, namespace: str | None = None) -> Callable[[_F], _F]: ...
    @overload
    def on(self, event: str, handler: _F, namespace: str | None = None) -> _F: ...
    def on(
        self, event: str, handler: Callable[..., Any] | None = None, namespace: str | None = None
    ) -> Any:
        """Register ``handler`` for ``event`` (``"connect"``, ``"disconnect"``, ``"*"``
        for every event without a handler of its own, or any name), or return a
        decorator that does. ``namespace="*"``: every namespace (passed before the sid)."""

        def register(func: _F) -> _F:
            self._register(event, func, namespace or "/")
            return func

        return register if handler is None else register(handler)

    @overload
    def event(self, handler: _F, namespace: str | None = None) -> _F: ...
    @overload
    def event(self, handler: None = None, namespace: str | None = None) -> Callable[[_F], _F]: ...
    def event(self, handler: Callable[..., Any] | None = None, namespace: str | None = None) -> Any:
        """``@sio.event`` / ``@sio.event(namespace=...)``: register under the function's name."""

        def register(func: _F) -> _F:
            self._register(func.__name__, func, namespace or "/")
            return func

        return register if handler is None else register(handler)

    def _register(self, event: str, func: Callable[..., Any], namespace: str) -> None:
        if not callable(func):
            raise TypeError("the handler must be callable")
        lead = 1 + int(namespace == "*")  # [namespace,] sid
        if not _is_async(func):
            if self.json is not None and event != "disconnect":
                func = self._decoding(func, lead + int(event == "*"))
            self.server.on(event, func, namespace=namespace)
            return
        if event == "connect":
            self.server.on(event, self._connect_bridge(func, lead), namespace=namespace)
        elif event == "disconnect":
            self.server.on(event, self._disconnect_bridge(func, lead), namespace=namespace)
        else:
            lead += int(event == "*")  # the event name comes first
            self.server._on_deferred(event, self._event_bridge(func, lead), namespace=namespace)

    def _decoding(self, func: Callable[..., Any], lead: int) -> Callable[..., Any]:
        """A sync handler whose arguments after the first ``lead`` go through ``json``,
        and its return value (an ack) too."""

        @functools.wraps(func)
        def decoded(*args: Any) -> Any:
            result = func(*args[:lead], *_json.decode(self.json, args[lead:]))
            return None if result is None else _json.encode(self.json, result)

        return decoded

    def _decode(self, args: tuple[Any, ...], lead: int) -> tuple[Any, ...]:
        if self.json is None or len(args) <= lead:
            return args
        return (*args[:lead], *_json.decode(self.json, args[lead:]))

    # -- bridges: called on the native handler threads ----------------------------------

    def _schedule(self, callback: Callable[..., object], *args: Any) -> bool:
        """``callback(*args)`` on the loop, from a handler thread; False (logged) when
        there is no loop to run it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            logger.error("swarmcast.AsyncServer: no event loop (start it with `await sio.start()`)")
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # closed meanwhile
            logger.error("swarmcast.AsyncServer: the event loop is closed; a handler was not run")
            return False
        return True

    def _event_bridge(self, func: Callable[..., Any], lead: int) -> Callable[..., None]:
        """``bridge(ack, [event,] [namespace,] sid, *args)``: start ``func`` on the loop;
        ``ack`` is answered when it returns."""
        sid_at = lead - 1

        def bridge(ack: _Ack | None, *args: Any) -> None:
            if not self._schedule(self._spawn_event, func, ack, args, lead, args[sid_at]):
                if ack is not None:
                    ack.fail()

        return bridge

    def _connect_bridge(self, func: Callable[..., Any], lead: int) -> Callable[..., Any]:
        """The connect decision: the handler thread waits for the coroutine (at most
        ``connect_timeout``), as the connection waits for the decision."""
        takes_auth = _accepts(func, lead + 1)

        def bridge(*args: Any) -> Any:  # (…, sid, auth): *args makes the native pass auth
            loop = self._loop
            if loop is None or loop.is_closed():
                raise RuntimeError("swarmcast.AsyncServer: no running event loop for the connect handler")
            call_args = self._decode(args, lead) if takes_auth else args[:lead]
            coro = func(*call_args)
            future = asyncio.run_coroutine_threadsafe(coro, loop)
            try:
                return future.result(self._connect_timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError(
                    f"the connect handler did not return within connect_timeout ({self._connect_timeout} s)"
                ) from None

        return bridge

    def _disconnect_bridge(self, func: Callable[..., Any], lead: int) -> Callable[..., None]:
        takes_reason = _accepts(func, lead + 1)

        def bridge(*args: Any) -> None:  # (…, sid, reason)
            call_args = args if takes_reason else args[:lead]
            self._schedule(self._spawn_disconnect, func, call_args, args[lead - 1])

        return bridge

    # -- on the loop --------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _chain(self, sid: str, make: Callable[[asyncio.Task[None] | None], Coroutine[Any, Any, None]]) -> None:
        """Start ``make(previous)`` as a task; with ``async_handlers=False`` it is the
        socket's new tail and waits for the one before."""
        loop = asyncio.get_running_loop()
        if self.async_handlers:
            self._track(loop.create_task(make(None)))
            return
        task = loop.create_task(make(self._tails.get(sid)))
        self._tails[sid] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tails.get(sid) is done:
                del self._tails[sid]

        task.add_done_callback(forget)
        self._track(task)

    def _spawn_event(
        self, func: Callable[..., Any], ack: _Ack | None, args: tuple[Any, ...], lead: int, sid: str
    ) -> None:
        self._chain(sid, lambda previous: self._run_event(previous, func, ack, args, lead))

    def _spawn_disconnect(self, func: Callable[..., Any], args: tuple[Any, ...], sid: str) -> None:
        self._chain(sid, lambda previous: self._run_disconnect(previous, func, args))

    async def _run_event(
        self,
        previous: asyncio.Task[None] | None,
        func: Callable[..., Any],
        ack: _Ack | None,
        args: tuple[Any, ...],
        lead: int,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        try:
            result = await func(*self._decode(args, lead))
            if ack is not None and self.json is not None and result is not None:
                result = _json.encode(self.json, result)
        except Exception:
            logger.exception(
                "error in the async handler %s (sid %s)", getattr(func, "__qualname__", func), args[lead - 1]
            )
            if ack is not None:
                await self._offload(ack.fail)
            return
        if ack is None:
            return
        try:
            # At once, on the loop, unless the client is behind on its queue: then
            # from the pool, waiting for it as any emit does.
            if ack.try_send(result) is None:
                await self._offload(ack.send, result)
        except Exception:
            logger.exception(
                "the ack of the async handler %s (sid %s) could not be sent",
                getattr(func, "__qualname__", func),
                args[lead - 1],
            )

    async def _run_disconnect(
        self, previous: asyncio.Task[None] | None, func: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        try:
            await func(*args)
        except Exception:
            logger.exception("error in the async disconnect handler %s", getattr(func, "__qualname__", func))

    async def _offload(self, func: Callable[..., _T], *args: Any) -> _T:
        """``func(*args)``: on the pool when it may block (backpressure), else here."""
        if not self._may_block:
            return func(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))

    def _on_loop(self, callback: Callable[..., Any]) -> Callable[..., None]:
        """``callback`` called (awaited if a coroutine function) on the loop, from the
        thread the native layer calls it on."""
        loop = asyncio.get_running_loop()
        decode = self.json is not None

        def run(*args: Any) -> None:
            if decode:
                args = _json.decode(self.json, args)
            result = callback(*args)
            if inspect.isawaitable(result):
                self._track(asyncio.ensure_future(result))

        def from_thread(*args: Any) -> None:
            try:
                loop.call_soon_threadsafe(run, *args)
            except RuntimeError:
                logger.error("swarmcast.AsyncServer: the event loop is closed; an emit callback was dropped")

        return from_thread

    # -- the server-side API ------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        volatile: bool = False,
        timeout: float = 60.0,
    ) -> int | None:
        """Emit ``event`` to every client of ``namespace``, or to rooms/sids ``to``
        (alias ``room``), minus ``skip_sid``; returns the number of sockets it was
        queued to (``None`` with ``emit_in_background=True``: handed off). ``data``: ``None`` sends no argument, a tuple several. ``callback``
        (one recipient) is called on the loop with the client's ack, if it comes within
        ``timeout``.

        Backpressure: when no client it targets is behind (its queue above the
        watermark), the emit is queued at once, on the loop, without waiting. When one
        is, the emit waits for it as ``Server.emit`` does (at most ``emit_max_wait``,
        then the slow-consumer policy) on a thread of this server's pool, so the loop
        runs on and the awaiting task is paced to the client's speed. Emits with a
        callback always go through the pool."""
        if self.json is not None and data is not None:
            data = _json.encode(self.json, data)
        if callback is None:
            # The common case, on the loop: the native layer emits at once when no
            # target is behind (above its backpressure watermark), without waiting.
            sent = self.server._try_emit(
                event, data, to=to, room=room, skip_sid=skip_sid, namespace=namespace, volatile=volatile
            )
            if sent is not False:
                return sent
        emit = functools.partial(
            self.server.emit,
            event,
            data,
            to=to,
            room=room,
            skip_sid=skip_sid,
            namespace=namespace,
            volatile=volatile,
            callback=None if callback is None else self._on_loop(callback),
            timeout=timeout,
        )
        return await self._offload(emit)

    async def send(
        self,
        data: Any = None,
        to: str | Iterable[str] | None = None,
        room: str | Iterable[str] | None = None,
        skip_sid: str | Iterable[str] | None = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
        volatile: bool = False,
        timeout: float = 60.0,
    ) -> int | None:
        """``emit("message", data, ...)``."""
        return await self.emit(
            "message", data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
            callback=callback, volatile=volatile, timeout=timeout,
        )

    async def call(
        self,
        event: str,
        data: Any = None,
        to: str | None = None,
        sid: str | None = None,
        namespace: str | None = None,
        timeout: float = 60.0,
    ) -> Any:
        """Emit to one client (``to`` or ``sid``) and wait for its ack; returns what it
        acknowledged with (``None``, one value, or a tuple of several). Raises
        ``TimeoutError`` after ``timeout`` seconds (also when the client leaves
        meanwhile, as python-socketio does), ``DisconnectedError`` if it is not
        connected."""
        target = to if to is not None else sid
        if target is None:
            raise ValueError("call() needs to=<sid>: it cannot broadcast")
        if not isinstance(target, str):
            raise TypeError(f"call() needs one sid (a str), not {type(target).__name__}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Any, ...]] = loop.create_future()

        def resolve(args: tuple[Any, ...]) -> None:
            if not answer.done():
                answer.set_result(args)

        def on_ack(*args: Any) -> None:  # on the socket's handler thread
            try:
                loop.call_soon_threadsafe(resolve, args)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        if self.json is not None and data is not None:
            data = _json.encode(self.json, data)
        emit = functools.partial(
            self.server.emit, event, data, to=target, namespace=namespace, callback=on_ack, timeout=timeout
        )
        await self._offload(emit)
        try:
            args = await asyncio.wait_for(answer, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no ack from {target} for '{event}' within {timeout} s") from None
        if self.json is not None:
            args = _json.decode(self.json, args)
        if not args:
            return None
        return args[0] if len(args) == 1 else args

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Put a socket in a room."""
        self.server.enter_room(sid, room, namespace=namespace)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Take a socket out of a room."""
        self.server.leave_room(sid, room, namespace=namespace)

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        """Empty a room."""
        self.server.close_room(room, namespace=namespace)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms of a socket, its own sid first."""
        return self.server.rooms(sid, namespace=namespace)

    async def disconnect(self, sid: str, namespace: str | None = None) -> bool:
        """Disconnect a socket (its client sees "io server disconnect"); False if it was
        not connected."""
        return await self._offload(functools.partial(self.server.disconnect, sid, namespace=namespace))

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, str] | None:
        """The handshake request of a connected socket as a WSGI-style environ dict."""
        return self.server.get_environ(sid, namespace=namespace)

    async def sleep(self, seconds: float = 0) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)

    def start_background_task(
        self, target: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any
    ) -> asyncio.Task[_T]:
        """Run ``target(*args, **kwargs)`` (a coroutine function) as a task on the
        running loop; returns the task. Call it on the loop (from a sync handler's
        thread, use ``asyncio.run_coroutine_threadsafe(..., sio.loop)``)."""
        loop = asyncio.get_running_loop()

        async def run() -> _T:
            return await target(*args, **kwargs)

        task = loop.create_task(run())
        self._track(task)
        return task
