//! The socket side of write-through (see `engine::queue`): an emit that finds a
//! WebSocket's writer idle frames its packet and writes it to the socket itself, one
//! non-blocking write, instead of waking the connection's task to do it. What the socket
//! does not take at once is kept here for the task, which sends it before anything else.

use std::cell::RefCell;

use super::conn::TcpShared;
use super::websocket::frame_parts;
use crate::engine::{Frame, WriteThrough, Written};
use crate::protocol::websocket;

/// The most one write-through sends: larger packets go through the writer (which
/// writes a large frame from where it is rather than copying it).
const MAX_WRITE_THROUGH: usize = 16 * 1024;

thread_local! {
    /// Where an emitting thread frames what it writes through (reused: no allocation
    /// per write).
    static FRAMED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl TcpShared {
    /// What a partial write-through left for the connection's task to send first.
    pub fn take_rest(&self) -> Option<Vec<u8>> {
        let mut rest = self.rest.lock();
        (!rest.is_empty()).then(|| std::mem::take(&mut *rest))
    }
}

/// One non-blocking send(2) on the socket itself, not tokio's `try_write`: that reads
/// the stream's readiness first, a cache line of its own that nothing else of a
/// write-through touches (4.8% of a server's CPU at 20 broadcasts/s to 1,000 clients,
/// where nothing of a recipient is cached). A "writable" left stale by a WouldBlock
/// here costs the connection's writer one failed try, which clears it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send(stream: &tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    socket2::SockRef::from(stream).send_with_flags(bytes, libc::MSG_NOSIGNAL)
}

/// Where send(2) has no `MSG_NOSIGNAL`, tokio's `try_write` (which guards against
/// SIGPIPE as the platform does).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send(stream: &tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    stream.try_write(bytes)
}

impl WriteThrough for TcpShared {
    fn write(&self, frames: &[Frame]) -> Written {
        FRAMED.with(|framed| {
            let Ok(mut out) = framed.try_borrow_mut() else {
                return Written::Nothing;
            };
            out.clear();
            let mut payload = 0;
            for frame in frames {
                let (opcode, data) = frame_parts(frame);
                if out.len() + websocket::MAX_HEADER_LEN + data.len() > MAX_WRITE_THROUGH {
                    return Written::Nothing;
                }
                websocket::write_frame(&mut out, opcode, data);
                payload += data.len();
            }
            // Full (WouldBlock), interrupted or failing: the writer takes the frames and
            // meets whatever the socket's problem is itself.
            let sent = match send(&self.stream, &out) {
                Ok(sent) if sent > 0 => sent,
                _ => return Written::Nothing,
            };
            self.stats.record_write_through(frames.len(), payload);
            if sent == out.len() {
                Written::All
            } else {
                self.rest.lock().extend_from_slice(&out[sent..]);
                Written::Partly
            }
        })
    }
}
