//! One TCP connection as the server holds it: counted against `max_connections`,
//! watched for writes that make no progress, and reset (not lingering with unsent
//! kernel buffers) when the server gives up on it. Also the listener (with its
//! backlog) and the refusal of connections past the cap.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::metrics::Stats;

/// Bind `addr` (a host name resolves to its first address that binds) with a listen
/// backlog of `backlog`.
pub(crate) async fn bind(addr: &str, backlog: u32) -> io::Result<TcpListener> {
    let mut last = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        match bind_one(resolved, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind while old connections
    // of the previous one are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The open TCP connections, against `max_connections`.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    open: AtomicUsize,
}

impl Connections {
    /// A slot for one more connection; None at `max`.
    pub fn admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// One admitted connection; the count goes down when it drops (with the socket).
#[derive(Debug)]
pub(crate) struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answer a connection past the cap with 503 and close it, all within a second.
pub(crate) async fn refuse(mut stream: TcpStream) {
    const BODY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
        Content-Type: text/plain\r\nContent-Length: 26\r\n\r\ntoo many connections, retry";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&BODY[..BODY.len() - 1]).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing with unread bytes would
        // reset the connection and could lose the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// What the server knows of a connection's writes, shared between the IO object (deep
/// inside hyper or tungstenite) and the task that serves the connection.
#[derive(Debug)]
pub(crate) struct WriteWatch {
    epoch: Instant,
    /// Milliseconds since `epoch` (+1) when a write started to wait; 0 when none waits.
    blocked_since: AtomicU64,
    /// Reset the connection when it is dropped (the server gave up on it).
    abort: AtomicBool,
}

impl WriteWatch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            blocked_since: AtomicU64::new(0),
            abort: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn blocked(&self) {
        let _ = self.blocked_since.compare_exchange(
            0,
            self.now_ms(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    fn progressed(&self) {
        self.blocked_since.store(0, Ordering::Release);
    }

    /// When a write that waits now will have waited `limit`; `now + limit` when no
    /// write waits.
    pub fn deadline(&self, limit: Duration) -> Instant {
        match self.blocked_since.load(Ordering::Acquire) {
            0 => Instant::now() + limit,
            since => self.epoch + Duration::from_millis(since - 1) + limit,
        }
    }

    /// Whether a write has waited `limit` or longer without progress.
    pub fn stalled(&self, limit: Duration) -> bool {
        match self.blocked_since.load(Ordering::Acquire) {
            0 => false,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)) >= limit,
        }
    }

    /// Note what a write poll says: waiting, or progress.
    fn track<T>(
        &self,
        poll: Poll<io::Result<T>>,
        progress: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Pending => self.blocked(),
            Poll::Ready(Ok(v)) if progress(v) => self.progressed(),
            Poll::Ready(_) => {}
        }
        poll
    }

    /// Reset the connection instead of closing it gracefully when it is dropped.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }
}

/// A connection whose socket can be reset (RST) instead of closed gracefully.
pub(crate) trait Resettable: AsyncRead + AsyncWrite + Unpin {
    /// Make the coming close a reset.
    fn reset(&self);
}

impl Resettable for TcpStream {
    fn reset(&self) {
        // RST now: a graceful close would leave the unsent bytes in the kernel,
        // retransmitted to a client that does not read, for minutes.
        let _ = self.set_zero_linger();
    }
}

/// The most one read of a [`SharedTcp`] takes.
const MAX_READ: usize = 16 * 1024;
/// The least one read of a [`SharedTcp`] offers, and where its reads start: a
/// long-polling request or a client's WebSocket frame is a few hundred bytes.
const MIN_READ: usize = 2 * 1024;

/// The server's own TCP stream, shared: the connection reads and writes it through
/// here, and an emitting thread may write to it directly when the connection's writer
/// waits idle (write-through, `server::write_through`). Sharing the stream, rather than
/// its descriptor, keeps the socket open for as long as anyone may write to it.
#[derive(Debug, Clone)]
pub(crate) struct SharedTcp {
    shared: Arc<TcpShared>,
    /// How much the next read offers the kernel (`MIN_READ` to `MAX_READ`, following
    /// what reads take): every byte offered is zeroed first (see `poll_read`).
    read_size: usize,
}

/// What [`SharedTcp`] shares: the stream, and what write-through needs beside it (in
/// the same allocation: every WebSocket has one, and idle memory per connection counts).
#[derive(Debug)]
pub(crate) struct TcpShared {
    pub(super) stream: TcpStream,
    /// The unsent end of a write-through the socket took only partly.
    pub(super) rest: parking_lot::Mutex<Vec<u8>>,
    pub(super) stats: Arc<Stats>,
}

impl SharedTcp {
    pub fn new(stream: TcpStream, stats: Arc<Stats>) -> Self {
        Self {
            shared: Arc::new(TcpShared {
                stream,
                rest: parking_lot::Mutex::new(Vec::new()),
                stats,
            }),
            read_size: MIN_READ,
        }
    }

    /// The stream as write-through sees it.
    pub fn shared(&self) -> Arc<TcpShared> {
        self.shared.clone()
    }

    /// Write with `write` once the socket is writable (tokio's own poll_write, on a
    /// shared stream).
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.shared.stream.poll_write_ready(cx))?;
            match write(&self.shared.stream) {
                // Readiness was stale: the failed try cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.shared.stream.poll_read_ready(cx))?;
            // A shared stream reads through a safe slice, which must be initialized
            // first, and hyper offers fresh (uninitialized) room at every read: the
            // read offers what reads have been taking, not all the room (zeroing 16 KiB
            // for a poll request of 300 bytes was 5% of a long-polling server's CPU).
            let offered = buf.remaining().min(self.read_size);
            match self
                .shared
                .stream
                .try_read(buf.initialize_unfilled_to(offered))
            {
                Ok(n) => {
                    buf.advance(n);
                    self.read_size = next_read_size(self.read_size, offered, n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: try_read cleared it, so the next poll registers.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The size of the read after one that was offered `offered` bytes and took `took`:
/// twice as much when it filled what it was offered (more may be waiting), half when
/// it took less than a quarter of it, within `MIN_READ..=MAX_READ`.
fn next_read_size(size: usize, offered: usize, took: usize) -> usize {
    if took == offered && offered == size {
        (size * 2).min(MAX_READ)
    } else if took < size / 4 {
        (size / 2).max(MIN_READ)
    } else {
        size
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.shared.stream).shutdown(std::net::Shutdown::Write))
    }
}

impl Resettable for SharedTcp {
    fn reset(&self) {
        self.shared.stream.reset();
    }
}

/// A WebSocket on a connection of the host application's HTTP server (a tower stack):
/// its socket is not ours to reset; dropping it closes it.
impl Resettable for TokioIo<hyper::upgrade::Upgraded> {
    fn reset(&self) {}
}

/// A stream that reports write progress to its [`WriteWatch`] and, for the server's own
/// connections, holds its [`Slot`] against `max_connections`.
pub(crate) struct Tracked<S: Resettable = SharedTcp> {
    stream: S,
    watch: Arc<WriteWatch>,
    _slot: Option<Slot>,
}

impl<S: Resettable> Tracked<S> {
    pub fn new(stream: S, watch: Arc<WriteWatch>, slot: Option<Slot>) -> Self {
        Self {
            stream,
            watch,
            _slot: slot,
        }
    }
}

impl<S: Resettable> Drop for Tracked<S> {
    fn drop(&mut self) {
        if self.watch.abort.load(Ordering::Acquire) {
            self.stream.reset();
        }
    }
}

impl<S: Resettable> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: Resettable> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch.track(poll, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch.track(poll, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The socket of an upgraded connection. One of the server's own is taken back from
/// hyper: its read buffer (8 KiB, kept for the whole connection while hyper owns the
/// socket) is let go, and whatever the client sent after the handshake, before hyper
/// handed the socket over, is read first from a copy of its own; an idle WebSocket then
/// holds only its own buffers. One of a host application's server (a tower stack) is
/// used through hyper as it is.
pub(crate) struct Detached {
    early: Bytes,
    stream: Upgraded,
}

enum Upgraded {
    Own(Tracked),
    Host(Tracked<TokioIo<hyper::upgrade::Upgraded>>),
}

impl Detached {
    /// The socket of `upgraded`; writes on a host application's connection are
    /// reported to `watch` (the server's own report to theirs already).
    pub fn take(upgraded: hyper::upgrade::Upgraded, watch: Arc<WriteWatch>) -> Self {
        match upgraded.downcast::<TokioIo<Tracked>>() {
            Ok(parts) => Self {
                // A copy: a slice of hyper's buffer would keep all of it alive.
                early: Bytes::copy_from_slice(&parts.read_buf),
                stream: Upgraded::Own(parts.io.into_inner()),
            },
            Err(upgraded) => Self {
                early: Bytes::new(),
                stream: Upgraded::Host(Tracked::new(TokioIo::new(upgraded), watch, None)),
            },
        }
    }

    /// The stream, when it is the server's own (a host application's connection is
    /// only reachable through hyper).
    pub fn shared_tcp(&self) -> Option<Arc<TcpShared>> {
        match &self.stream {
            Upgraded::Own(s) => Some(s.stream.shared()),
            Upgraded::Host(_) => None,
        }
    }

    fn io(&mut self) -> Pin<&mut dyn AsyncStream> {
        match &mut self.stream {
            Upgraded::Own(s) => Pin::new(s as &mut dyn AsyncStream),
            Upgraded::Host(s) => Pin::new(s as &mut dyn AsyncStream),
        }
    }
}

/// What [`Detached`] forwards to.
trait AsyncStream: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncStream for S {}

impl AsyncRead for Detached {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            let early = self.early.split_to(n);
            buf.put_slice(&early);
            return Poll::Ready(Ok(()));
        }
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Detached {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Upgraded::Own(s) => s.is_write_vectored(),
            Upgraded::Host(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// Which `Host` names requests may carry (DNS rebinding: a page of
/// `http://evil.example:P` whose name now resolves to 127.0.0.1 is same-origin with
/// this server in the browser's eyes; only the `Host` header tells).
#[derive(Debug, Clone)]
pub(crate) struct Hosts {
    any: bool,
    names: Vec<String>,
    loopback_only: bool,
}

impl Hosts {
    /// `allowed` names (`*` for any); empty: loopback names only when the server is
    /// bound to a loopback address, any otherwise.
    pub fn new(allowed: &[String], bound_loopback: bool) -> Self {
        Self {
            any: allowed.iter().any(|h| h == "*"),
            names: allowed.iter().map(|h| h.to_ascii_lowercase()).collect(),
            loopback_only: allowed.is_empty() && bound_loopback,
        }
    }

    /// Whether a request with this `Host` header may be served. No header: not a
    /// browser, allowed.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let name = host_name(host).to_ascii_lowercase();
        if self.any {
            return true;
        }
        if self.loopback_only {
            return is_loopback_name(&name);
        }
        self.names.is_empty() || self.names.contains(&name)
    }

    /// Whether the `Host` name was checked against something (an allow-list, or the
    /// loopback rule): only then may `Origin` be compared with it.
    pub fn validated(&self) -> bool {
        !self.any && (self.loopback_only || !self.names.is_empty())
    }
}

/// The name part of a `Host` header (or of an origin's authority): without the port,
/// an IPv6 literal without its brackets.
pub(crate) fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_name("[::1]:5000"), "::1");
        assert_eq!(host_name("example.com"), "example.com");
        let loopback = Hosts::new(&[], true);
        assert!(loopback.allows(Some("localhost:5000")));
        assert!(loopback.allows(Some("127.0.0.1:5000")));
        assert!(loopback.allows(Some("[::1]:5000")));
        assert!(!loopback.allows(Some("evil.example:5000")));
        assert!(loopback.allows(None));
        assert!(loopback.validated());
        let public = Hosts::new(&[], false);
        assert!(public.allows(Some("evil.example")));
        assert!(!public.validated());
        let listed = Hosts::new(&["app.example".into()], true);
        assert!(listed.allows(Some("APP.example:443")));
        assert!(!listed.allows(Some("localhost:5000")));
    }

    #[test]
    fn reads_offer_what_reads_take() {
        // Small reads stay at the least; full ones double up to the most; then shrink.
        assert_eq!(next_read_size(MIN_READ, MIN_READ, 300), MIN_READ);
        assert_eq!(next_read_size(MIN_READ, MIN_READ, MIN_READ), 2 * MIN_READ);
        assert_eq!(next_read_size(MAX_READ, MAX_READ, MAX_READ), MAX_READ);
        assert_eq!(next_read_size(MAX_READ, MAX_READ, 100), MAX_READ / 2);
        assert_eq!(
            next_read_size(4 * MIN_READ, 4 * MIN_READ, 3 * MIN_READ),
            4 * MIN_READ
        );
        // Less room than the size offered (hyper's buffer nearly full): no growth.
        assert_eq!(next_read_size(MIN_READ, 100, 100), MIN_READ);
    }

    #[tokio::test]
    async fn a_shared_stream_reads_a_large_body_whole_and_grows_its_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let writer = tokio::spawn(async move {
            let mut out = tokio::net::TcpStream::connect(addr).await.expect("connect");
            out.write_all(&sent).await.expect("write");
        });
        let (stream, _) = listener.accept().await.expect("accept");
        let mut shared = SharedTcp::new(stream, Arc::new(Stats::default()));
        let mut got = Vec::new();
        let mut most = 0;
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = shared.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            most = most.max(n);
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.expect("writer");
        assert_eq!(got, body, "every byte, in order");
        assert!(most > MIN_READ, "reads grew past the first size: {most}");
        assert!(most <= MAX_READ);
    }

    #[test]
    fn the_cap_counts_slots() {
        let conns = Arc::new(Connections::default());
        let a = conns.admit(2).expect("first");
        let _b = conns.admit(2).expect("second");
        assert!(conns.admit(2).is_none());
        drop(a);
        assert_eq!(conns.open(), 1);
        assert!(conns.admit(2).is_some());
    }
}
