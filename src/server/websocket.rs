//! WebSocket transport: handshake over hyper's upgrade, the polling -> WebSocket probe,
//! and one task per connection that both reads and writes.
//!
//! A broadcast wakes every recipient's task, so what one wake costs above the kernel's
//! `write()` is most of what a delivery costs at low load: the task polls its reader
//! only when the socket woke it ([`ReadWake`]), arms a write timer only when a write
//! waits ([`Guarded`]), and flushes tungstenite only when a read may have left a reply
//! in it. Better still, an emit after a quiet moment writes to an idle connection's
//! socket itself and wakes nothing ([`WriteThroughSocket`], `engine::queue`).
//!
//! Every idle connection holds its task's state, so its size is watched: the task is
//! spawned on its own once the handshake is done, and the write timer lives on the
//! heap only while a write waits (7.5 KiB per idle WebSocket, docs/performance.md).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::WaitForCancellationFuture;
use tokio_util::task::TaskTracker;

use super::app::ResponseBody;
use super::conn::TcpShared;
use super::conn::{Detached, WriteWatch};
use super::http::{EngineError, HttpResponse};
use crate::batch::{Batcher, Decision};
use crate::engine::{CloseReason, Engine, Frame, FrameData, RequestInfo, Session, Transport};
use crate::protocol::engineio;
use crate::protocol::websocket::{self, Opcode};

type Ws = WebSocketStream<Detached>;

/// The most a writer copies into one buffer: a batch larger than this goes out in
/// several writes, and a frame larger than this is written from where it is.
const WRITE_CHUNK: usize = 64 * 1024;

/// How long the socket of a session that closed may take to accept its last frames.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// Every write to one WebSocket goes through here: a write that makes no progress for
/// the write timeout (or [`CLOSE_GRACE`] once the session is closed) ends the
/// connection, and its socket is reset when dropped.
struct WriteGuard {
    watch: Arc<WriteWatch>,
    timeout: Duration,
}

impl WriteGuard {
    fn run<'a, F: Future>(&'a self, session: &'a Session, write: F) -> Guarded<'a, F> {
        Guarded {
            write,
            guard: self,
            session,
            timer: None,
            closed: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A write under its [`WriteGuard`]. A hand-written future rather than an async fn:
    /// every connection's task holds one of these inline for its largest write, and
    /// here the write is stored once and the timer and the close watch, which only a
    /// write that waits needs, are on the heap (an async fn kept the write twice and
    /// both always: 1,176 bytes of each idle connection's 8 KiB).
    struct Guarded<'a, F> {
        #[pin]
        write: F,
        guard: &'a WriteGuard,
        session: &'a Session,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
        closed: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, CloseReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (guard, session) = (*this.guard, *this.session);
        loop {
            if let Poll::Ready(out) = this.write.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            let limit = if session.is_closed() {
                CLOSE_GRACE.min(guard.timeout)
            } else {
                guard.timeout
            };
            let deadline = guard.watch.deadline(limit);
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                if guard.watch.stalled(limit) {
                    guard.watch.abort();
                    // A closed session's reason is given already.
                    return Poll::Ready(Err(if session.is_closed() {
                        CloseReason::TransportError
                    } else {
                        CloseReason::WriteTimeout
                    }));
                }
                // It progressed meanwhile: the deadline moves on.
                continue;
            }
            if !session.is_closed() {
                let closed = this
                    .closed
                    .get_or_insert_with(|| Box::pin(session.closed()));
                if closed.as_mut().poll(cx).is_ready() {
                    // The session closed: from now on the shorter limit holds.
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

pub(crate) fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// What a WebSocket handshake is for.
pub(crate) enum Purpose {
    /// A new WebSocket-only session.
    Open,
    /// Probe, then upgrade, this polling session (it accepted the probe).
    Upgrade(Arc<Session>),
    /// A session that is being or has been upgraded by another WebSocket: accept this
    /// one and close it at once (the spec says the server MUST close it; refusing the
    /// handshake instead makes the official client report an error).
    Refuse,
}

/// Answer 101 and hand the upgraded connection to a task.
pub(crate) fn upgrade<B>(
    engine: Arc<Engine>,
    purpose: Purpose,
    mut req: Request<B>,
    info: RequestInfo,
    tasks: TaskTracker,
    write_timeout: Duration,
) -> HttpResponse {
    let guard = WriteGuard {
        watch: req
            .extensions()
            .get::<Arc<WriteWatch>>()
            .cloned()
            .unwrap_or_else(WriteWatch::new),
        timeout: write_timeout,
    };
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        if let Purpose::Upgrade(session) = &purpose {
            session.probe_abandoned();
        }
        return EngineError::BadRequest.response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = ws_config(engine.config.max_payload);
    let run_tasks = tasks.clone();
    tasks.spawn(async move {
        // However the upgrade ends, a probe that never completed gives the session back
        // to long-polling (a no-op once upgraded).
        let probe = match &purpose {
            Purpose::Upgrade(session) => Some(AbandonProbeOnDrop(session.clone())),
            _ => None,
        };
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let socket = Detached::take(upgraded, guard.watch.clone());
        let mut ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        let (session, active) = match purpose {
            Purpose::Upgrade(session) => (session, false),
            Purpose::Open => {
                let (session, open) = engine.open(Transport::WebSocket, &info);
                match guard.run(&session, ws.send(Message::text(open))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        session.close(CloseReason::TransportError);
                        return;
                    }
                    Err(reason) => {
                        session.close(reason);
                        return;
                    }
                }
                (session, true)
            }
            Purpose::Refuse => {
                close_gracefully(&mut ws).await;
                return;
            }
        };
        // The connection lives on in a task of its own, which holds only what it uses:
        // this one's state keeps its captures (the request's details among them) for
        // as long as it runs, more than half a kilobyte on each idle connection.
        run_tasks.spawn(run(ws, session, engine, active, guard, probe));
    });
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

fn ws_config(max_payload: usize) -> WebSocketConfig {
    // A small read buffer (1 KiB, allocated for every connection): most connections
    // are idle dashboards that send little, and memory per connection is what limits
    // how many one box holds (8.0 KiB per idle WebSocket at 19,000, docs/performance.md).
    // A larger message only takes more reads. Data frames do not go through
    // tungstenite's write buffer (write_batch frames a batch itself), only its control
    // frames and the probe's answer.
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// Read client packets and write queued frames on one task. `active` is false while a
/// polling session probes this WebSocket: then only the probe and UPGRADE are expected,
/// and the queue still belongs to the polling transport (`probe` gives the session back
/// to it if this task ends before the upgrade).
async fn run(
    mut ws: Ws,
    session: Arc<Session>,
    engine: Arc<Engine>,
    mut active: bool,
    guard: WriteGuard,
    _probe: Option<AbandonProbeOnDrop>,
) {
    let mut batch: VecDeque<Frame> = VecDeque::new();
    let mut batcher = Batcher::new(engine.config.batch_window, engine.config.max_batch);
    let mut hold_until: Option<tokio::time::Instant> = None;
    let reader = ReadWake::new();
    let through = WriteThroughSocket::new(&ws, &session, &engine, active);
    // Whether tungstenite may hold bytes of its own (a pong or close reply it queued
    // while reading): only reads put them there, so a write after none skips the flush.
    let mut read_since_write = true;
    let reason = loop {
        let wants = Wants {
            frames: active && hold_until.is_none(),
            hold_until,
            probe_end: !active,
        };
        // What a partial write-through left goes out before anything else, here and
        // wherever the task writes (a write-through can only start while it is armed).
        match guard.run(&session, write_rest(&mut ws, &through)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break CloseReason::TransportError,
            Err(reason) => break reason,
        }
        // Armed, pushes may write to the socket while this task waits. The task itself
        // writes nothing meanwhile: reading does not write either, as tungstenite holds
        // nothing unsent here (a read that leaves a reply in it is flushed at once).
        let armed = active && hold_until.is_none() && through.arm();
        let event = next_event(&mut ws, &session, &reader, wants).await;
        if armed {
            session.disarm_write_through();
        }
        match event {
            Event::Incoming(incoming) => {
                read_since_write = true;
                let message = match incoming {
                    None => break CloseReason::TransportClose,
                    Some(Ok(m)) => m,
                    Some(Err(e @ (WsError::Capacity(_) | WsError::Utf8(_)))) => {
                        // Too big: 1009; a text frame that is not UTF-8: 1007 (RFC 6455, 7.4.1).
                        let (code, reason) = match e {
                            WsError::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8"),
                            _ => (CloseCode::Size, "message too big"),
                        };
                        let close = async {
                            write_rest(&mut ws, &through).await?;
                            let frame = CloseFrame {
                                code,
                                reason: reason.into(),
                            };
                            ws.close(Some(frame)).await.map_err(io::Error::other)
                        };
                        let _ = guard.run(&session, close).await;
                        break CloseReason::ParseError;
                    }
                    Some(Err(WsError::ConnectionClosed)) | Some(Err(WsError::AlreadyClosed)) => {
                        break CloseReason::TransportClose
                    }
                    Some(Err(e)) => {
                        tracing::debug!(sid = %session.sid(), error = %e, "websocket read error");
                        break CloseReason::TransportError;
                    }
                };
                match message {
                    Message::Text(text) if !active => {
                        match engineio::decode_text(&text) {
                            Ok(engineio::Packet::Ping("probe")) => {
                                let sent =
                                    guard.run(&session, ws.send(Message::text("3probe"))).await;
                                if !matches!(sent, Ok(Ok(()))) {
                                    return;
                                }
                                session.probe_succeeded();
                            }
                            Ok(engineio::Packet::Upgrade) if session.complete_upgrade() => {
                                // From here on this socket writes, starting with what
                                // the polling transport left queued.
                                active = true;
                                through.activate();
                            }
                            // Anything else on a probing socket: close this socket, keep
                            // the session.
                            _ => {
                                session.probe_abandoned();
                                close_gracefully(&mut ws).await;
                                return;
                            }
                        }
                    }
                    Message::Text(text) => {
                        let outcome = engineio::decode_text(&text)
                            .map_err(|_| CloseReason::ParseError)
                            .and_then(|packet| session.receive(packet));
                        if let Err(reason) = outcome {
                            session.close(reason);
                        }
                    }
                    Message::Binary(data) if active => session.receive_binary(&data),
                    Message::Binary(_) => {
                        session.probe_abandoned();
                        close_gracefully(&mut ws).await;
                        return;
                    }
                    Message::Close(_) => break CloseReason::TransportClose,
                    // tungstenite answers pings itself; the reply goes out with the next flush.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                        let flush = async {
                            write_rest(&mut ws, &through).await?;
                            ws.flush().await.map_err(io::Error::other)
                        };
                        match guard.run(&session, flush).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break CloseReason::TransportError,
                            Err(reason) => break reason,
                        }
                    }
                }
            }
            Event::FramesReady | Event::HoldOver => {
                if hold_until.take().is_none() {
                    if let Decision::WaitUntil(until) =
                        batcher.on_ready(tokio::time::Instant::now())
                    {
                        hold_until = Some(until);
                        continue;
                    }
                }
                let flush_first = std::mem::take(&mut read_since_write);
                let write = async {
                    write_rest(&mut ws, &through).await.map_err(|_| ())?;
                    write_batch(
                        &mut ws,
                        &session,
                        &mut batch,
                        batcher.max_batch(),
                        &engine,
                        flush_first,
                    )
                    .await
                };
                match guard.run(&session, write).await {
                    Ok(Ok(true)) => return,
                    Ok(Ok(false)) => batcher.on_write(tokio::time::Instant::now()),
                    Ok(Err(())) => break CloseReason::TransportError,
                    Err(reason) => break reason,
                }
            }
            Event::ProbeEnded => return,
        }
    };
    if reason == CloseReason::WriteTimeout {
        engine.stats.write_timeout();
        tracing::debug!(sid = %session.sid(), "websocket write made no progress; connection reset");
    }
    // A probe socket that goes away leaves the polling session as it was.
    if active {
        session.close(reason);
    }
}

/// Send what a partial write-through left for the task (see [`WriteThroughSocket`]).
async fn write_rest(ws: &mut Ws, through: &WriteThroughSocket<'_>) -> io::Result<()> {
    if let Some(rest) = through.take_rest() {
        let stream = ws.get_mut();
        stream.write_all(&rest).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// What the connection's task waits for this time round.
struct Wants {
    /// Queued frames (the transport is active and no batch is held).
    frames: bool,
    /// The end of a held batch.
    hold_until: Option<tokio::time::Instant>,
    /// The end of the session a probing socket belongs to.
    probe_end: bool,
}

/// Why the connection's task woke.
enum Event {
    Incoming(Option<Result<Message, WsError>>),
    FramesReady,
    HoldOver,
    ProbeEnded,
}

/// Wait for the next thing the connection's task has to do. The reader goes first (a
/// writer that always finds frames ready cannot starve pings or a close), but it only
/// reads when its socket woke the task since its last read ([`ReadWake`]): otherwise
/// its turn is two atomic operations.
async fn next_event(ws: &mut Ws, session: &Session, reader: &ReadWake, wants: Wants) -> Event {
    let frames = session.frames_ready();
    let hold = sleep_until_opt(wants.hold_until);
    let probe_end = session.closed();
    tokio::pin!(frames, hold, probe_end);
    poll_fn(|cx| {
        if let Poll::Ready(incoming) = reader.poll_next(ws, cx) {
            return Poll::Ready(Event::Incoming(incoming));
        }
        if wants.frames && frames.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::FramesReady);
        }
        if wants.hold_until.is_some() && hold.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::HoldOver);
        }
        if wants.probe_end && probe_end.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::ProbeEnded);
        }
        Poll::Pending
    })
    .await
}

/// The connection's side of write-through (see `engine::queue`): its socket given to
/// the session's queue once this transport is the active one, and armed while the task
/// waits idle. Dropping it (before the socket: it is made after it) takes the socket
/// back from the queue, however the task ends, so nothing writes to the connection
/// after it and the socket closes with it.
struct WriteThroughSocket<'a> {
    session: &'a Session,
    socket: Option<Arc<TcpShared>>,
}

impl<'a> WriteThroughSocket<'a> {
    /// Write-through for `ws`, when its socket is the server's own and writes are not
    /// held for batching (`EngineConfig::batch_window` zero: a write-through is a write
    /// now); `active`: the transport writes already.
    fn new(ws: &Ws, session: &'a Session, engine: &Engine, active: bool) -> Self {
        let enabled = engine.config.write_through && engine.config.batch_window.is_zero();
        let socket = ws.get_ref().shared_tcp().filter(|_| enabled);
        let this = Self { session, socket };
        if active {
            this.activate();
        }
        this
    }

    /// This transport writes from now on.
    fn activate(&self) {
        if let Some(socket) = &self.socket {
            self.session.set_write_through(socket.clone());
        }
    }

    /// Let pushes write through while the task waits; false when they may not.
    fn arm(&self) -> bool {
        self.socket.is_some() && self.session.arm_write_through()
    }

    /// What a partial write-through left to send before anything else.
    fn take_rest(&self) -> Option<Vec<u8>> {
        self.socket.as_ref().and_then(|s| s.take_rest())
    }
}

impl Drop for WriteThroughSocket<'_> {
    fn drop(&mut self) {
        if self.socket.is_some() {
            self.session.clear_write_through();
        }
    }
}

/// The waker the reader is polled with: it notes that the socket (or tungstenite) woke
/// the task, then wakes it. A wake for queued frames then costs no read attempt, which
/// through tungstenite and the runtime's readiness is about a tenth of a delivery.
struct ReadWake {
    state: Arc<ReadWakeState>,
    waker: Waker,
}

struct ReadWakeState {
    /// Set when the reader may have something: at first, when woken, after a message.
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ReadWakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ReadWake {
    fn new() -> Self {
        let state = Arc::new(ReadWakeState {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(state.clone());
        Self { state, waker }
    }

    fn poll_next(
        &self,
        ws: &mut Ws,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, WsError>>> {
        self.state.task.register(cx.waker());
        if !self.state.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = ws.poll_next_unpin(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // tungstenite may hold more messages read in the same chunk: no wake will
            // say so.
            self.state.woken.store(true, Ordering::Release);
        }
        polled
    }
}

/// Send a close frame (no status code) and wait briefly for the client's, so that the
/// client sees a clean close rather than a dropped connection.
async fn close_gracefully(ws: &mut Ws) {
    if ws.close(None).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

struct AbandonProbeOnDrop(Arc<Session>);

impl Drop for AbandonProbeOnDrop {
    fn drop(&mut self) {
        self.0.probe_abandoned();
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A frame's WebSocket opcode and payload.
pub(super) fn frame_parts(frame: &Frame) -> (Opcode, &[u8]) {
    match &*frame.0 {
        FrameData::Text(t) => (Opcode::Text, t.as_bytes()),
        FrameData::Binary(b) => (Opcode::Binary, &b[..]),
    }
}

/// Take up to `max` queued frames and write them in one buffer, one write call. Ok(true)
/// when the session is closed and the socket was closed after the last frames.
///
/// The frames are framed here ([`websocket::write_frame`]) and written to the stream
/// under tungstenite, after flushing what tungstenite itself may hold (a pong it
/// queued while reading; `flush_first`, when a read happened since the last write), so
/// the two never interleave.
async fn write_batch(
    ws: &mut Ws,
    session: &Session,
    batch: &mut VecDeque<Frame>,
    max: usize,
    engine: &Engine,
    flush_first: bool,
) -> Result<bool, ()> {
    let closed = session.take_frames(batch, max);
    let frames = batch.len();
    if frames > 0 {
        let payload: usize = batch.iter().map(Frame::len).sum();
        let mut out =
            Vec::with_capacity((payload + frames * websocket::MAX_HEADER_LEN).min(WRITE_CHUNK));
        if flush_first {
            ws.flush().await.map_err(|_| ())?;
        }
        let stream = ws.get_mut();
        for frame in batch.drain(..) {
            let (opcode, data) = frame_parts(&frame);
            if out.len() + websocket::MAX_HEADER_LEN + data.len() > WRITE_CHUNK && !out.is_empty() {
                stream.write_all(&out).await.map_err(|_| ())?;
                out.clear();
            }
            if data.len() > WRITE_CHUNK {
                // A large frame goes out from where it is, after its header.
                websocket::write_header(&mut out, opcode, data.len());
                stream.write_all(&out).await.map_err(|_| ())?;
                out.clear();
                stream.write_all(data).await.map_err(|_| ())?;
            } else {
                websocket::write_frame(&mut out, opcode, data);
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(|_| ())?;
        }
        stream.flush().await.map_err(|_| ())?;
        engine.stats.record_write(frames, payload);
    }
    if session.queued() > 0 {
        // More than one batch was waiting: come back for the rest.
        session.wake_writer();
    }
    if closed && session.queued() == 0 {
        let _ = ws.close(None).await;
        return Ok(true);
    }
    Ok(false)
}
