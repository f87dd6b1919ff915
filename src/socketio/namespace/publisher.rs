//! Outgoing packets of a namespace: what an emit carries ([`Outgoing`]), its single
//! encoding, and the fan-out of the encoded bytes to the local sockets it targets.

use std::sync::Arc;

use bytes::Bytes;

use super::members::Members;
use crate::engine::{CloseReason, SendError};
use crate::metrics::Stats;
use crate::socketio::emitter::{EmitReport, SlowConsumerPolicy};
use crate::socketio::packet::{self, EncodeError, Encoded, WriteArgs};
use crate::socketio::rooms::Target;
use crate::socketio::socket::Socket;

/// One outgoing event, before encoding.
pub(crate) struct Outgoing<'a> {
    pub event: &'a str,
    /// Writes the arguments (each preceded by a comma).
    pub args: WriteArgs<'a>,
    pub attachments: &'a [Bytes],
    pub target: &'a Target,
    pub volatile: bool,
    /// Keyed-state coalescing key: a queued packet with the same key is replaced.
    pub keyed: Option<&'a Arc<str>>,
    /// Matched against subscription filters (the event name, or the state key).
    pub filter_key: &'a str,
}

impl Outgoing<'_> {
    /// The packet as namespace `namespace` sends it, with a recovery offset when given.
    pub fn encode(&self, namespace: &str, offset: Option<&str>) -> Result<Encoded, EncodeError> {
        packet::encode_event(
            namespace,
            self.event,
            None,
            self.attachments,
            self.args,
            offset,
        )
    }
}

/// Push one encoded packet to every local socket the target reaches. The bytes are
/// shared, never copied per recipient; a full queue never makes the caller wait.
/// Returns the report and the sockets whose queue was full (non-volatile).
pub(crate) fn fan_out(
    members: &Members,
    encoded: &Encoded,
    out: &Outgoing<'_>,
    stats: &Stats,
) -> (EmitReport, Vec<Socket>) {
    let mut report = EmitReport::default();
    let mut slow = Vec::new();
    members.for_each_target(out.target, Some(out.filter_key), |socket| {
        let pushed = match (out.keyed, encoded.frames.first()) {
            (Some(key), Some(frame)) if encoded.frames.len() == 1 => socket.send_keyed(key, frame),
            _ => socket.send_frames(&encoded.frames),
        };
        match pushed {
            Ok(()) => report.delivered += 1,
            Err(SendError::QueueFull) if out.volatile => report.volatile_dropped += 1,
            Err(SendError::QueueFull) => {
                report.full.push(socket.id_arc());
                slow.push(socket.clone());
            }
            // Disconnecting right now: its disconnect is being handled.
            Err(SendError::Closed) => {}
        }
    });
    stats.record_emit(
        report.delivered,
        report.full.len(),
        report.volatile_dropped,
        encoded.size(),
    );
    (report, slow)
}

/// Apply the slow-consumer policy. Call outside every lock: closing a socket runs its
/// disconnect path, which may run application code that emits.
pub(crate) fn drop_slow(policy: SlowConsumerPolicy, stats: &Stats, slow: Vec<Socket>) {
    if policy == SlowConsumerPolicy::Disconnect {
        for socket in slow {
            stats.slow_consumer();
            socket.close_connection_with(CloseReason::SlowConsumer);
        }
    }
}
