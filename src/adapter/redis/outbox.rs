//! [`Outbox`]: the publisher's queue of commands for Redis, bounded in bytes. While
//! Redis answers it holds one batch at a time; while Redis is away it holds the whole
//! outage, in order, until Redis returns (or the bound is hit, when the
//! [`OutagePolicy`] says what goes). Commands that only refresh what the node re-sends
//! on reconnection anyway (heartbeats, sessions of live sockets) are not kept.

use std::collections::VecDeque;

use super::config::OutagePolicy;
use super::node::Node;
use super::publisher::Command;
use super::wire::kind;
use crate::metrics::ClusterGauge;

/// Bytes a command holds in memory (payload plus a fixed overhead), for the bound.
fn size(command: &Command) -> usize {
    const OVERHEAD: usize = 96;
    OVERHEAD
        + match command {
            Command::Broadcast { nsp, msg, .. } => {
                nsp.len()
                    + msg.event.len()
                    + msg.tail.len()
                    + msg.attachments.iter().map(|a| a.len()).sum::<usize>()
                    + msg.target.rooms.iter().map(|r| r.len()).sum::<usize>()
                    + msg.target.except.iter().map(|r| r.len()).sum::<usize>()
            }
            Command::Entry { nsp, data, .. } => nsp.len() + data.as_ref().map_or(0, String::len),
            Command::Publish { channel, payload } => channel.len() + payload.len(),
            Command::SetSession { key, value, .. } => key.len() + value.len(),
            Command::DelSession { key } => key.len(),
            Command::State { nsp, change } => {
                nsp.len()
                    + change.map.len()
                    + change.key.len()
                    + change.value.as_ref().map_or(0, |v| v.to_string().len())
            }
        }
}

/// Commands that a reconnection re-sends anyway: not worth keeping through an outage.
fn refreshed_on_reconnect(command: &Command) -> bool {
    match command {
        Command::Entry { kind: k, .. } => *k == kind::HEARTBEAT,
        Command::SetSession { live, .. } => *live,
        _ => false,
    }
}

pub(super) struct Outbox {
    items: VecDeque<(Command, usize)>,
    /// The next publish sequence (see `Entry::ps`).
    next_ps: u64,
    bytes: usize,
    max_bytes: usize,
    policy: OutagePolicy,
}

impl Outbox {
    pub(super) fn new(max_bytes: usize, policy: OutagePolicy) -> Self {
        Self {
            items: VecDeque::new(),
            next_ps: 1,
            bytes: 0,
            max_bytes: max_bytes.max(1),
            policy,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Keep `command` for Redis. `connected`: Redis answers now (every command is kept,
    /// whatever its kind). Over the bound, the policy drops (counted).
    pub(super) fn push(&mut self, node: &Node, mut command: Command, connected: bool) {
        if !connected && refreshed_on_reconnect(&command) {
            return;
        }
        if let Command::Broadcast { ps: ps @ None, .. } = &mut command {
            *ps = Some(self.next_ps);
            self.next_ps += 1;
        }
        let size = size(&command);
        while self.bytes + size > self.max_bytes && !self.items.is_empty() {
            match self.policy {
                OutagePolicy::DropOldest => {
                    if let Some((old, old_size)) = self.items.pop_front() {
                        self.bytes -= old_size;
                        node.outage_dropped(old);
                    }
                }
                OutagePolicy::DropNewest => {
                    node.outage_dropped(command);
                    return;
                }
            }
        }
        self.bytes += size;
        self.items.push_back((command, size));
    }

    /// Put commands first (what a reconnection re-sends before the backlog), over the
    /// bound if need be.
    pub(super) fn push_front(&mut self, commands: Vec<Command>) {
        for command in commands.into_iter().rev() {
            let size = size(&command);
            self.bytes += size;
            self.items.push_front((command, size));
        }
    }

    /// The first `n` commands (at most), to send.
    pub(super) fn front(&self, n: usize) -> impl Iterator<Item = &Command> {
        self.items.iter().take(n).map(|(c, _)| c)
    }

    /// Take the first `n` commands (sent).
    pub(super) fn pop(&mut self, n: usize) -> Vec<Command> {
        let n = n.min(self.items.len());
        self.items
            .drain(..n)
            .map(|(c, size)| {
                self.bytes -= size;
                c
            })
            .collect()
    }

    /// Report the gauges.
    pub(super) fn gauges(&self, node: &Node) {
        if let Some(stats) = node.stats() {
            stats.cluster_gauge(ClusterGauge::OutageBufferBytes, self.bytes as u64);
            stats.cluster_gauge(ClusterGauge::OutageBufferMessages, self.items.len() as u64);
        }
    }
}

impl Node {
    /// A command the outage buffer could not keep: counted, and what local delivery
    /// still owes for it done now.
    fn outage_dropped(&self, command: Command) {
        if let Some(stats) = self.stats() {
            stats.cluster_outage_dropped(1);
        }
        self.failed_locally(command);
    }
}
