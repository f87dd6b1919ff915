//! What all clients of one run share (one thread, so `Cell`/`RefCell`), and the
//! minimal parsing of the packets they receive.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::hist::Histogram;

/// Microseconds since the Unix epoch (the producers' `ts` clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The unsigned integer after `key` (`"seq":`), skipping spaces: no JSON parse.
pub fn find_u64(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &text[at..];
    let spaces = rest.iter().take_while(|b| **b == b' ').count();
    leading_u64(&rest[spaces..]).map(|(n, _)| n)
}

/// `seq` and `ts` of a tick's arguments (`["tick",{...}]`). Every producer writes
/// `{"seq":N,"ts":T,...}` in that order, so they are read where they stand; any other
/// layout is searched for (the tool reads millions of these a second: a search per
/// field was a quarter of its CPU).
fn tick_fields(args: &[u8]) -> Option<(u64, u64)> {
    const SEQ: &[u8] = b"[\"tick\",{\"seq\":";
    if let Some(rest) = args.strip_prefix(SEQ) {
        let (seq, rest) = leading_u64(rest)?;
        if let Some(rest) = rest.strip_prefix(b",\"ts\":") {
            return Some((seq, leading_u64(rest)?.0));
        }
    }
    Some((find_u64(args, b"\"seq\":")?, find_u64(args, b"\"ts\":")?))
}

/// The unsigned integer `text` starts with, and what follows it.
fn leading_u64(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut n: u64 = 0;
    for &b in &text[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (digits > 0).then_some((n, &text[digits..]))
}

/// Sequence tracking of one client: events arrive in order on one connection, so a
/// jump is a loss and a step back a duplicate.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqTrack {
    pub next: u64,
    pub received: u64,
    pub gaps: u64,
    pub dups: u64,
    pub connected: bool,
}

/// Where an error belongs in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer broke the protocol (bad handshake, malformed or unexpected packet).
    Protocol,
    /// The connection could not be made (refused, out of descriptors, timed out).
    Connect,
    /// An established connection ended while the run still needed it.
    Disconnect,
}

pub struct Run {
    pub hist: RefCell<Histogram>,
    /// The long-polling clients' share of `hist` (clients `0..polling`): their HTTP
    /// round trips make the tail of a mixed run, so the report shows them apart.
    pub hist_polling: RefCell<Histogram>,
    pub polling: usize,
    pub received: Cell<u64>,
    pub first_recv: Cell<u64>,
    pub last_recv: Cell<u64>,
    pub seqs: RefCell<Vec<SeqTrack>>,
    pub connected: Cell<usize>,
    pub live: Cell<usize>,
    pub connect_failed: Cell<usize>,
    /// Milliseconds from the start of the connect phase to each client's CONNECT reply.
    pub connect_ms: RefCell<Vec<f64>>,
    pub disconnects: Cell<u64>,
    pub protocol_errors: Cell<u64>,
    pub other_packets: Cell<u64>,
    pub errors: RefCell<Vec<String>>,
    /// The run is over: connections ending now are not disconnects.
    pub stopping: Cell<bool>,
}

impl Run {
    pub fn new(clients: usize, polling: usize) -> Self {
        Self {
            hist: RefCell::new(Histogram::default()),
            hist_polling: RefCell::new(Histogram::default()),
            polling,
            received: Cell::new(0),
            first_recv: Cell::new(0),
            last_recv: Cell::new(0),
            seqs: RefCell::new(vec![SeqTrack::default(); clients]),
            connected: Cell::new(0),
            live: Cell::new(0),
            connect_failed: Cell::new(0),
            connect_ms: RefCell::new(Vec::with_capacity(clients)),
            disconnects: Cell::new(0),
            protocol_errors: Cell::new(0),
            other_packets: Cell::new(0),
            errors: RefCell::new(Vec::new()),
            stopping: Cell::new(false),
        }
    }

    /// Keep the first few messages of each kind for the report.
    pub fn fault(&self, kind: Fault, msg: impl FnOnce() -> String) {
        match kind {
            Fault::Protocol => self.protocol_errors.set(self.protocol_errors.get() + 1),
            Fault::Connect => self.connect_failed.set(self.connect_failed.get() + 1),
            Fault::Disconnect => {
                if self.stopping.get() {
                    return;
                }
                self.disconnects.set(self.disconnects.get() + 1);
            }
        }
        let mut errors = self.errors.borrow_mut();
        if errors.len() < 12 {
            errors.push(format!("{kind:?}: {}", msg()));
        }
    }

    pub fn on_connected(&self, id: usize, elapsed_ms: f64) {
        self.connected.set(self.connected.get() + 1);
        self.live.set(self.live.get() + 1);
        self.connect_ms.borrow_mut().push(elapsed_ms);
        if let Some(t) = self.seqs.borrow_mut().get_mut(id) {
            t.connected = true;
        }
    }

    pub fn on_closed(&self) {
        self.live.set(self.live.get().saturating_sub(1));
    }

    /// One Engine.IO text packet from the main namespace, received at `now` (µs since
    /// the epoch: the time of the read that brought it, one clock read per read, so
    /// that the tool's own parsing of the packets before it is not counted as the
    /// server's latency). Returns false when the connection must end (server
    /// disconnect or close).
    pub fn on_packet(&self, id: usize, packet: &[u8], now: u64) -> Packet {
        match packet {
            [b'4', b'2', rest @ ..] if rest.starts_with(b"[\"tick\"") => match tick_fields(rest) {
                Some((seq, ts)) => {
                    self.on_tick(id, seq, ts, now);
                    Packet::Handled
                }
                None => Packet::Bad,
            },
            [b'2', ..] => Packet::Ping,
            [b'4', b'1', ..] | [b'1', ..] => Packet::Closed,
            [b'4', b'4', ..] => Packet::Bad,
            [b'4', ..] | [b'6', ..] | [b'3', ..] => {
                self.other_packets.set(self.other_packets.get() + 1);
                Packet::Handled
            }
            _ => Packet::Bad,
        }
    }

    fn on_tick(&self, id: usize, seq: u64, ts: u64, now: u64) {
        self.hist.borrow_mut().record(now.saturating_sub(ts));
        if id < self.polling {
            self.hist_polling
                .borrow_mut()
                .record(now.saturating_sub(ts));
        }
        self.received.set(self.received.get() + 1);
        if self.first_recv.get() == 0 {
            self.first_recv.set(now);
        }
        self.last_recv.set(now);
        if let Some(t) = self.seqs.borrow_mut().get_mut(id) {
            t.received += 1;
            if seq == t.next {
                t.next += 1;
            } else if seq > t.next {
                t.gaps += seq - t.next;
                t.next = seq + 1;
            } else {
                t.dups += 1;
            }
        }
    }
}

/// What a received packet asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    Handled,
    /// A server PING: answer `3`.
    Ping,
    /// DISCONNECT or CLOSE from the server.
    Closed,
    /// Not a packet this client can receive.
    Bad,
}

#[cfg(all(test, feature = "selftest"))]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers_with_or_without_spaces() {
        let node = br#"["tick",{"seq":42,"ts":1700000000123456,"pad":"x"}]"#;
        let py = br#"["tick", {"seq": 42, "ts": 1700000000123456, "pad": "x"}]"#;
        for t in [&node[..], &py[..]] {
            assert_eq!(find_u64(t, b"\"seq\":"), Some(42));
            assert_eq!(find_u64(t, b"\"ts\":"), Some(1_700_000_000_123_456));
        }
        assert_eq!(find_u64(b"{\"seq\":}", b"\"seq\":"), None);
    }

    #[test]
    fn reads_tick_fields_in_place_or_by_search() {
        let compact = br#"["tick",{"seq":42,"ts":1700000000123456,"pad":"x"}]"#;
        let spaced = br#"["tick", {"seq": 42, "ts": 1700000000123456, "pad": "x"}]"#;
        let reordered = br#"["tick",{"ts":1700000000123456,"seq":42}]"#;
        for t in [&compact[..], &spaced[..], &reordered[..]] {
            assert_eq!(tick_fields(t), Some((42, 1_700_000_000_123_456)));
        }
        assert_eq!(tick_fields(br#"["tick",{"seq":,"ts":1}]"#), None);
        assert_eq!(tick_fields(br#"["tick",{"seq":1}]"#), None);
        assert_eq!(
            tick_fields(br#"["tick",{"seq":99999999999999999999,"ts":1}]"#),
            None
        );
    }

    #[test]
    fn tracks_gaps_and_duplicates() {
        let run = Run::new(1, 0);
        for seq in [0, 1, 3, 3, 4] {
            let p = format!("42[\"tick\",{{\"seq\":{seq},\"ts\":1}}]");
            assert_eq!(run.on_packet(0, p.as_bytes(), now_us()), Packet::Handled);
        }
        let t = run.seqs.borrow()[0];
        assert_eq!((t.next, t.gaps, t.dups, t.received), (5, 1, 1, 5));
        assert_eq!(run.on_packet(0, b"2", 0), Packet::Ping);
        assert_eq!(run.on_packet(0, b"41", 0), Packet::Closed);
        assert_eq!(run.on_packet(0, b"x", 0), Packet::Bad);
    }
}
