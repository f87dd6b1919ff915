//! Socket.IO protocol, revision 5: namespaces, acknowledgements and binary attachments.
//!
//! Every Socket.IO packet travels as the payload of an Engine.IO message. Its
//! text form is
//!
//! ```text
//! <kind>[<# of binary attachments>-][<namespace>,][<ack id>][JSON payload]
//! ```
//!
//! where the namespace is written only when it is not `/`, and the attachment
//! count only for the binary kinds. A binary packet (`BINARY_EVENT`,
//! `BINARY_ACK`) is followed by that many binary Engine.IO messages, which the
//! JSON payload refers to with `{"_placeholder":true,"num":N}` objects; the
//! [`Reassembler`] collects them.
//!
//! | packet                                                  | text                          |
//! |---------------------------------------------------------|-------------------------------|
//! | CONNECT to `/`                                          | `0`                           |
//! | CONNECT to `/admin`, accepted                           | `0/admin,{"sid":"oSO0..."}`   |
//! | EVENT `["foo"]` with ack id 12                          | `212["foo"]`                  |
//! | ACK `["bar"]` on `/admin` for id 13                     | `3/admin,13["bar"]`           |
//! | BINARY_EVENT `["baz", <01 02 03 04>]`                   | `51-["baz",{"_placeholder":true,"num":0}]` + 1 binary frame |
//! | DISCONNECT from `/admin`                                | `1/admin,`                    |
//!
//! ```
//! use swarmcast::protocol::socketio::{self, PacketKind, Reassembler};
//!
//! let packet = socketio::decode(r#"51-["baz",{"_placeholder":true,"num":0}]"#, 10)?;
//! assert_eq!(packet.kind, PacketKind::BinaryEvent);
//! assert_eq!(packet.event_name(), Some("baz"));
//!
//! let mut reassembler = Reassembler::default();
//! assert!(reassembler.push_packet(packet)?.is_none());
//! let complete = reassembler
//!     .push_attachment(bytes::Bytes::from_static(&[1, 2, 3, 4]))?
//!     .expect("the only attachment completes the packet");
//! assert_eq!(complete.attachments[0].as_ref(), &[1, 2, 3, 4]);
//! # Ok::<(), socketio::DecodeError>(())
//! ```

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::Value;

/// Event names an application may not use, as they have a special meaning in
/// the reference implementation. [`decode`] rejects events that carry them.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Upper bound on the attachment slots reserved up front by the
/// [`Reassembler`]; more are allocated as they arrive.
const PREALLOCATED_ATTACHMENTS: usize = 16;

/// The kind of a Socket.IO packet (its first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0`: connection to a namespace (request from the client, grant from the server).
    Connect = 0,
    /// `1`: disconnection from a namespace.
    Disconnect = 1,
    /// `2`: an event: `["name", args...]`.
    Event = 2,
    /// `3`: the answer to an event that carried an ack id.
    Ack = 3,
    /// `4`: the server refuses a connection to a namespace.
    ConnectError = 4,
    /// `5`: an event with binary attachments.
    BinaryEvent = 5,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck = 6,
}

impl PacketKind {
    /// Whether packets of this kind carry binary attachments (`BINARY_EVENT`, `BINARY_ACK`).
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }

    /// The kind for an ASCII digit `'0'..='6'`, `None` for anything else.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '0' => Self::Connect,
            '1' => Self::Disconnect,
            '2' => Self::Event,
            '3' => Self::Ack,
            '4' => Self::ConnectError,
            '5' => Self::BinaryEvent,
            '6' => Self::BinaryAck,
            _ => return None,
        })
    }

    /// The digit that starts an encoded packet of this kind.
    pub fn as_char(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }
}

/// A Socket.IO packet.
///
/// For binary kinds, `data` still holds the `{"_placeholder":true,"num":N}`
/// objects and `attachments` the declared count; the attachments themselves
/// travel separately (see [`Reassembler`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// What the packet does.
    pub kind: PacketKind,
    /// The namespace: `"/"` when absent on the wire. Starts with `/` and
    /// contains no `,` (the built-in format has no escape for it).
    pub namespace: String,
    /// The acknowledgement id, if the sender expects (or this is) an answer.
    pub id: Option<u64>,
    /// The JSON payload, if any.
    pub data: Option<Value>,
    /// Number of binary attachments that follow; 0 for non-binary kinds.
    pub attachments: usize,
}

impl Packet {
    /// A CONNECT packet: from a client, `data` is its auth payload; from the
    /// server, `{"sid": ...}`.
    pub fn connect(namespace: impl Into<String>, data: Option<Value>) -> Self {
        Self::plain(PacketKind::Connect, namespace, None, data)
    }

    /// A DISCONNECT packet.
    pub fn disconnect(namespace: impl Into<String>) -> Self {
        Self::plain(PacketKind::Disconnect, namespace, None, None)
    }

    /// A CONNECT_ERROR packet with the payload `{"message": message}`.
    pub fn connect_error(namespace: impl Into<String>, message: &str) -> Self {
        let data = serde_json::json!({ "message": message });
        Self::plain(PacketKind::ConnectError, namespace, None, Some(data))
    }

    /// An EVENT packet; `data` is the array `["name", args...]`.
    pub fn event(namespace: impl Into<String>, data: Value, id: Option<u64>) -> Self {
        Self::plain(PacketKind::Event, namespace, id, Some(data))
    }

    /// An ACK packet answering the event with this `id`; `data` is the array of answers.
    pub fn ack(namespace: impl Into<String>, data: Value, id: u64) -> Self {
        Self::plain(PacketKind::Ack, namespace, Some(id), Some(data))
    }

    fn plain(
        kind: PacketKind,
        namespace: impl Into<String>,
        id: Option<u64>,
        data: Option<Value>,
    ) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            id,
            data,
            attachments: 0,
        }
    }

    /// The event name: the first element of an EVENT or BINARY_EVENT payload.
    pub fn event_name(&self) -> Option<&str> {
        match (self.kind, &self.data) {
            (PacketKind::Event | PacketKind::BinaryEvent, Some(Value::Array(items))) => {
                items.first().and_then(Value::as_str)
            }
            _ => None,
        }
    }
}

/// Why a Socket.IO packet (or a binary attachment) was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The text is empty, so it has no packet kind.
    #[error("empty Socket.IO packet")]
    Empty,
    /// The first character is not a packet kind digit `0`..`6`.
    #[error("unknown Socket.IO packet kind {0:?}")]
    UnknownKind(char),
    /// A binary packet does not start with `<count>-`, or the count is 0.
    #[error("invalid attachment count in a binary Socket.IO packet")]
    BadAttachments,
    /// A binary packet declares more attachments than allowed.
    #[error("binary Socket.IO packet declares more than {max} attachments")]
    TooManyAttachments {
        /// The limit that was passed to [`decode`].
        max: usize,
    },
    /// The acknowledgement id does not fit in 64 bits.
    #[error("invalid acknowledgement id")]
    BadAckId,
    /// An ACK or BINARY_ACK packet without an acknowledgement id.
    #[error("{0:?} packet without an acknowledgement id")]
    MissingAckId(PacketKind),
    /// An acknowledgement id on a packet kind that cannot carry one.
    #[error("{0:?} packet with an acknowledgement id")]
    UnexpectedAckId(PacketKind),
    /// The payload is not valid JSON.
    #[error("invalid JSON in Socket.IO packet: {0}")]
    BadJson(String),
    /// The payload has the wrong shape for the packet kind.
    #[error("invalid payload for a {kind:?} packet: {reason}")]
    InvalidPayload {
        /// The packet kind.
        kind: PacketKind,
        /// What the kind requires.
        reason: &'static str,
    },
    /// An event uses one of the [`RESERVED_EVENTS`] names.
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
    /// A placeholder object in a binary packet has no valid `num`, or points
    /// past the declared attachment count.
    #[error("invalid binary attachment placeholder")]
    BadPlaceholder,
    /// A text packet arrived while the attachments of a binary packet were
    /// still expected.
    #[error("text packet received while binary attachments are pending")]
    PacketPending,
    /// A binary attachment arrived while no binary packet was waiting for one.
    #[error("binary attachment received with no binary packet pending")]
    NoPendingPacket,
}

/// Decode the text part of a Socket.IO packet (the Engine.IO message payload,
/// e.g. `2/admin,12["event",1]`).
///
/// Validates the payload shape per kind:
/// - CONNECT: absent or an object;
/// - DISCONNECT: absent;
/// - EVENT, BINARY_EVENT: a non-empty array whose first element is a string
///   that is not one of the [`RESERVED_EVENTS`];
/// - ACK, BINARY_ACK: an array, and an ack id is required;
/// - CONNECT_ERROR: an object or a string.
///
/// Only EVENT and the ACK kinds may carry an ack id. The attachment count is
/// read only for binary kinds (e.g. `51-["a",{"_placeholder":true,"num":0}]`),
/// must be at least 1 and at most `max_attachments`, and every placeholder in
/// the payload must point below it.
pub fn decode(text: &str, max_attachments: usize) -> Result<Packet, DecodeError> {
    decode_with_data(text, max_attachments).map(|(packet, _)| packet)
}

/// [`decode`], also giving the payload's JSON text as it came (empty when there is
/// none): for applications that want the client's exact bytes (see
/// [`event_args_text`]).
pub fn decode_with_data(text: &str, max_attachments: usize) -> Result<(Packet, &str), DecodeError> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(DecodeError::Empty)?;
    let kind = PacketKind::from_char(first).ok_or(DecodeError::UnknownKind(first))?;
    // The kind is one ASCII byte; every later step only advances over ASCII
    // bytes or up to an ASCII ',' so `rest` always starts on a char boundary.
    let mut rest = chars.as_str();

    let mut attachments = 0;
    if kind.is_binary() {
        let (digits, after) = split_digits(rest);
        rest = after
            .strip_prefix('-')
            .filter(|_| !digits.is_empty())
            .ok_or(DecodeError::BadAttachments)?;
        let count = parse_decimal(digits).ok_or(DecodeError::TooManyAttachments {
            max: max_attachments,
        })?;
        if count == 0 {
            return Err(DecodeError::BadAttachments);
        }
        attachments = usize::try_from(count)
            .ok()
            .filter(|&n| n <= max_attachments)
            .ok_or(DecodeError::TooManyAttachments {
                max: max_attachments,
            })?;
    }

    let namespace = if rest.starts_with('/') {
        match rest.split_once(',') {
            Some((namespace, after)) => {
                rest = after;
                namespace
            }
            None => std::mem::take(&mut rest),
        }
    } else {
        "/"
    };

    let (digits, after) = split_digits(rest);
    rest = after;
    let id = if digits.is_empty() {
        None
    } else {
        Some(parse_decimal(digits).ok_or(DecodeError::BadAckId)?)
    };

    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|e| DecodeError::BadJson(e.to_string()))?)
    };

    validate(kind, id, data.as_ref(), attachments)?;
    let packet = Packet {
        kind,
        namespace: namespace.to_owned(),
        id,
        data,
        attachments,
    };
    Ok((packet, rest))
}

/// The arguments of an EVENT's payload text (`["name", a1, a2]`) as a JSON array of
/// the arguments exactly as they came (`[a1,a2]`: each argument's bytes kept, key
/// order, number spelling and escapes included; only the separators between them are
/// rewritten). `None` when the text is not an array with a name first.
///
/// ```
/// use swarmcast::protocol::socketio::event_args_text;
/// let raw = event_args_text(r#"["save", {"b":1,"a":2.50}, "\u00e9"]"#);
/// assert_eq!(raw.as_deref(), Some(r#"[{"b":1,"a":2.50},"\u00e9"]"#));
/// ```
pub fn event_args_text(payload: &str) -> Option<String> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(payload).ok()?;
    let (_, args) = items.split_first()?;
    let mut out = String::with_capacity(payload.len());
    out.push('[');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(arg.get());
    }
    out.push(']');
    Some(out)
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    // `end` counts ASCII bytes from the start, so it is a char boundary.
    (s.get(..end).unwrap_or(""), s.get(end..).unwrap_or(""))
}

/// Parses ASCII digits; `None` on overflow.
fn parse_decimal(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

fn validate(
    kind: PacketKind,
    id: Option<u64>,
    data: Option<&Value>,
    attachments: usize,
) -> Result<(), DecodeError> {
    let invalid = |reason| Err(DecodeError::InvalidPayload { kind, reason });
    match kind {
        PacketKind::Connect | PacketKind::Disconnect | PacketKind::ConnectError if id.is_some() => {
            return Err(DecodeError::UnexpectedAckId(kind));
        }
        PacketKind::Ack | PacketKind::BinaryAck if id.is_none() => {
            return Err(DecodeError::MissingAckId(kind));
        }
        _ => {}
    }
    match (kind, data) {
        (PacketKind::Connect, None | Some(Value::Object(_))) => {}
        (PacketKind::Connect, _) => return invalid("expected an object or nothing"),
        (PacketKind::Disconnect, None) => {}
        (PacketKind::Disconnect, _) => return invalid("expected no payload"),
        (PacketKind::ConnectError, Some(Value::Object(_) | Value::String(_))) => {}
        (PacketKind::ConnectError, _) => return invalid("expected an object or a string"),
        (PacketKind::Event | PacketKind::BinaryEvent, Some(Value::Array(items))) => {
            match items.first() {
                Some(Value::String(name)) if RESERVED_EVENTS.contains(&name.as_str()) => {
                    return Err(DecodeError::ReservedEvent(name.clone()));
                }
                // socket.io-parser 4.2 accepts a number too (`typeof payload[0] === "number"`).
                Some(Value::String(_) | Value::Number(_)) => {}
                Some(_) => return invalid("the event name must be a string or a number"),
                None => return invalid("expected a non-empty array"),
            }
        }
        (PacketKind::Event | PacketKind::BinaryEvent, _) => {
            return invalid("expected a non-empty array")
        }
        (PacketKind::Ack | PacketKind::BinaryAck, Some(Value::Array(_))) => {}
        (PacketKind::Ack | PacketKind::BinaryAck, _) => return invalid("expected an array"),
    }
    if kind.is_binary() {
        if let Some(data) = data {
            check_placeholders(data, attachments)?;
        }
    }
    Ok(())
}

/// Every object with `"_placeholder": true` must be a valid placeholder
/// pointing below `attachments` (the reference decoder fails the same way when
/// it rebuilds the packet).
fn check_placeholders(data: &Value, attachments: usize) -> Result<(), DecodeError> {
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    match placeholder_index(value) {
                        Some(num) if num < attachments => continue,
                        _ => return Err(DecodeError::BadPlaceholder),
                    }
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    Ok(())
}

/// Write the packet header `<kind>[<attachments>-][<nsp>,][<id>]` into `out`.
///
/// The attachment count is written only for binary kinds, the namespace only
/// when it is neither `"/"` nor empty. The caller appends the JSON payload
/// right after: this is how the server encodes a broadcast once without
/// building a [`Value`].
///
/// The namespace must start with `/` and contain no `,`, or the result will
/// not decode back to the same namespace.
pub fn write_header(
    out: &mut String,
    kind: PacketKind,
    attachments: usize,
    namespace: &str,
    id: Option<u64>,
) {
    out.push(kind.as_char());
    if kind.is_binary() {
        // Writing into a String cannot fail.
        let _ = write!(out, "{attachments}-");
    }
    if !namespace.is_empty() && namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
}

/// Encode a whole packet (header + JSON data).
pub fn encode(packet: &Packet) -> String {
    let mut out = String::with_capacity(16 + packet.namespace.len());
    encode_into(&mut out, packet);
    out
}

/// Append the encoding of `packet` (as [`encode`] returns it) to `out`.
pub fn encode_into(out: &mut String, packet: &Packet) {
    write_header(
        out,
        packet.kind,
        packet.attachments,
        &packet.namespace,
        packet.id,
    );
    if let Some(data) = &packet.data {
        // `Value`'s Display is its compact JSON; writing into a String cannot fail.
        let _ = write!(out, "{data}");
    }
}

/// The placeholder that stands for binary attachment `num` in a packet's JSON:
/// `{"_placeholder":true,"num":num}`.
pub fn placeholder(num: usize) -> Value {
    serde_json::json!({ "_placeholder": true, "num": num })
}

/// `Some(num)` if `v` is a placeholder object (`"_placeholder": true` and a
/// non-negative integer `num`), `None` otherwise.
pub fn placeholder_index(v: &Value) -> Option<usize> {
    let map = v.as_object()?;
    if map.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    usize::try_from(map.get("num")?.as_u64()?).ok()
}

/// The number of placeholder objects (see [`placeholder_index`]) anywhere in `v`.
pub fn count_placeholders(v: &Value) -> usize {
    let mut count = 0;
    let mut stack = vec![v];
    while let Some(value) = stack.pop() {
        if placeholder_index(value).is_some() {
            count += 1;
            continue;
        }
        match value {
            Value::Object(map) => stack.extend(map.values()),
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    count
}

/// A binary packet together with its attachments, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletePacket {
    /// The packet; for binary kinds its data still holds the placeholders.
    pub packet: Packet,
    /// The attachments: `attachments[n]` replaces the placeholder with `num` n.
    pub attachments: Vec<Bytes>,
}

#[derive(Debug)]
struct Pending {
    packet: Packet,
    attachments: Vec<Bytes>,
}

/// Reassembles a binary packet from its text header and the binary frames
/// that follow.
///
/// One per connection (Socket.IO sends a binary packet's attachments right
/// after it, before any other packet). Errors are protocol violations after
/// which the connection should be closed; the state is left as it was.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: Option<Pending>,
}

impl Reassembler {
    /// Feed a decoded packet.
    ///
    /// Non-binary packets (or binary ones with 0 attachments) come straight
    /// back complete. A binary packet with N > 0 attachments is held and this
    /// returns `Ok(None)`. Fails with [`DecodeError::PacketPending`] if a
    /// packet is already waiting for attachments.
    pub fn push_packet(&mut self, packet: Packet) -> Result<Option<CompletePacket>, DecodeError> {
        if self.pending.is_some() {
            return Err(DecodeError::PacketPending);
        }
        if !packet.kind.is_binary() || packet.attachments == 0 {
            return Ok(Some(CompletePacket {
                packet,
                attachments: Vec::new(),
            }));
        }
        let capacity = packet.attachments.min(PREALLOCATED_ATTACHMENTS);
        self.pending = Some(Pending {
            packet,
            attachments: Vec::with_capacity(capacity),
        });
        Ok(None)
    }

    /// Feed one binary attachment.
    ///
    /// Fails with [`DecodeError::NoPendingPacket`] if no packet is waiting.
    /// Returns the complete packet when its last attachment arrives.
    pub fn push_attachment(&mut self, data: Bytes) -> Result<Option<CompletePacket>, DecodeError> {
        let pending = self.pending.as_mut().ok_or(DecodeError::NoPendingPacket)?;
        pending.attachments.push(data);
        if pending.attachments.len() < pending.packet.attachments {
            return Ok(None);
        }
        Ok(self.pending.take().map(|p| CompletePacket {
            packet: p.packet,
            attachments: p.attachments,
        }))
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// How many attachments the pending packet still needs (0 if none is pending).
    pub fn missing_attachments(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| {
            p.packet.attachments.saturating_sub(p.attachments.len())
        })
    }

    /// Drop the pending packet, if any (for example when the connection closes).
    pub fn clear(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod raw_args_tests {
    use super::*;

    #[test]
    fn event_arguments_keep_the_clients_bytes() {
        assert_eq!(
            event_args_text(r#"["ev",{"z":1,"a":[1.0,2e3]}, 18446744073709551616 ,"\u0041"]"#)
                .as_deref(),
            Some(r#"[{"z":1,"a":[1.0,2e3]},18446744073709551616,"\u0041"]"#)
        );
        assert_eq!(event_args_text(r#"["ev"]"#).as_deref(), Some("[]"));
        assert_eq!(
            event_args_text(r#"["ev",{"_placeholder":true,"num":0}]"#).as_deref(),
            Some(r#"[{"_placeholder":true,"num":0}]"#)
        );
        assert_eq!(event_args_text("[]"), None);
        assert_eq!(event_args_text(r#"{"a":1}"#), None);
        assert_eq!(event_args_text("[1,"), None);
    }

    #[test]
    fn decode_gives_the_payload_text_as_it_came() {
        let (packet, data) =
            decode_with_data(r#"2/chat,7["ev", {"b":1,"a":2}]"#, 10).expect("decodes");
        assert_eq!(packet.id, Some(7));
        assert_eq!(packet.namespace, "/chat");
        assert_eq!(data, r#"["ev", {"b":1,"a":2}]"#);
        let (_, data) = decode_with_data("1", 10).expect("decodes");
        assert_eq!(data, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const MAX: usize = 10;

    fn packet(
        kind: PacketKind,
        namespace: &str,
        id: Option<u64>,
        data: Option<Value>,
        attachments: usize,
    ) -> Packet {
        Packet {
            kind,
            namespace: namespace.to_owned(),
            id,
            data,
            attachments,
        }
    }

    /// `wire` decodes to `expected`, and `expected` encodes to `wire`.
    #[track_caller]
    fn both_ways(wire: &str, expected: &Packet) {
        assert_eq!(decode(wire, MAX).as_ref(), Ok(expected), "decoding {wire}");
        assert_eq!(encode(expected), wire, "encoding {expected:?}");
    }

    // --- Socket.IO v5 spec, "Packet encoding" > "Examples" ----------------

    #[test]
    fn spec_connect_main_namespace() {
        both_ways("0", &packet(PacketKind::Connect, "/", None, None, 0));
    }

    #[test]
    fn spec_connect_custom_namespace() {
        both_ways(
            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            &packet(
                PacketKind::Connect,
                "/admin",
                None,
                Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"})),
                0,
            ),
        );
    }

    #[test]
    fn spec_connect_refused() {
        let expected = packet(
            PacketKind::ConnectError,
            "/",
            None,
            Some(json!({"message": "Not authorized"})),
            0,
        );
        both_ways(r#"4{"message":"Not authorized"}"#, &expected);
        assert_eq!(Packet::connect_error("/", "Not authorized"), expected);
    }

    #[test]
    fn spec_event_main_namespace() {
        both_ways(
            r#"2["foo"]"#,
            &packet(PacketKind::Event, "/", None, Some(json!(["foo"])), 0),
        );
    }

    #[test]
    fn spec_event_custom_namespace() {
        both_ways(
            r#"2/admin,["bar"]"#,
            &packet(PacketKind::Event, "/admin", None, Some(json!(["bar"])), 0),
        );
    }

    #[test]
    fn spec_event_binary() {
        let wire = r#"51-["baz",{"_placeholder":true,"num":0}]"#;
        let expected = packet(
            PacketKind::BinaryEvent,
            "/",
            None,
            Some(json!(["baz", placeholder(0)])),
            1,
        );
        both_ways(wire, &expected);
        let mut r = Reassembler::default();
        assert_eq!(r.push_packet(expected.clone()), Ok(None));
        assert!(r.is_pending());
        let buf = Bytes::from_static(&[1, 2, 3, 4]);
        assert_eq!(
            r.push_attachment(buf.clone()),
            Ok(Some(CompletePacket {
                packet: expected,
                attachments: vec![buf],
            }))
        );
        assert!(!r.is_pending());
    }

    #[test]
    fn spec_event_multiple_attachments() {
        let wire =
            r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        let expected = packet(
            PacketKind::BinaryEvent,
            "/admin",
            None,
            Some(json!(["baz", placeholder(0), placeholder(1)])),
            2,
        );
        both_ways(wire, &expected);
        assert_eq!(expected.data.as_ref().map(count_placeholders), Some(2));
        let mut r = Reassembler::default();
        assert_eq!(r.push_packet(expected.clone()), Ok(None));
        assert_eq!(r.missing_attachments(), 2);
        assert_eq!(r.push_attachment(Bytes::from_static(&[1, 2])), Ok(None));
        assert_eq!(r.missing_attachments(), 1);
        assert_eq!(
            r.push_attachment(Bytes::from_static(&[3, 4])),
            Ok(Some(CompletePacket {
                packet: expected,
                attachments: vec![Bytes::from_static(&[1, 2]), Bytes::from_static(&[3, 4])],
            }))
        );
        assert_eq!(r.missing_attachments(), 0);
    }

    #[test]
    fn spec_ack_main_namespace() {
        let expected = packet(PacketKind::Event, "/", Some(12), Some(json!(["foo"])), 0);
        both_ways(r#"212["foo"]"#, &expected);
        assert_eq!(Packet::event("/", json!(["foo"]), Some(12)), expected);
    }

    #[test]
    fn spec_ack_custom_namespace() {
        let expected = packet(PacketKind::Ack, "/admin", Some(13), Some(json!(["bar"])), 0);
        both_ways(r#"3/admin,13["bar"]"#, &expected);
        assert_eq!(Packet::ack("/admin", json!(["bar"]), 13), expected);
    }

    #[test]
    fn spec_ack_binary() {
        both_ways(
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            &packet(
                PacketKind::BinaryAck,
                "/",
                Some(15),
                Some(json!(["bar", placeholder(0)])),
                1,
            ),
        );
    }

    #[test]
    fn spec_disconnect() {
        both_ways("1", &packet(PacketKind::Disconnect, "/", None, None, 0));
        both_ways(
            "1/admin,",
            &packet(PacketKind::Disconnect, "/admin", None, None, 0),
        );
        assert_eq!(
            Packet::disconnect("/admin"),
            packet(PacketKind::Disconnect, "/admin", None, None, 0)
        );
    }

    // --- "Exchange protocol" examples, encoded with the built-in format -----

    #[test]
    fn spec_exchange_connection_to_a_namespace() {
        // with the main namespace
        both_ways("0", &Packet::connect("/", None));
        both_ways(
            r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
            &Packet::connect("/", Some(json!({"sid": "wZX3oN0bSVIhsaknAAAI"}))),
        );
        // with a custom namespace
        both_ways("0/admin,", &Packet::connect("/admin", None));
        both_ways(
            r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            &Packet::connect("/admin", Some(json!({"sid": "oSO0OpakMV_3jnilAAAA"}))),
        );
        // with an additional payload
        both_ways(
            r#"0/admin,{"token":"123"}"#,
            &Packet::connect("/admin", Some(json!({"token": "123"}))),
        );
        both_ways(
            r#"0/admin,{"sid":"iLnRaVGHY4B75TeVAAAB"}"#,
            &Packet::connect("/admin", Some(json!({"sid": "iLnRaVGHY4B75TeVAAAB"}))),
        );
        // in case the connection is refused
        both_ways(
            r#"4{"message":"Not authorized"}"#,
            &Packet::connect_error("/", "Not authorized"),
        );
    }

    #[test]
    fn spec_exchange_sending_and_receiving_data() {
        both_ways(r#"2["foo"]"#, &Packet::event("/", json!(["foo"]), None));
        both_ways(r#"2["bar"]"#, &Packet::event("/", json!(["bar"]), None));
        both_ways(
            r#"2/admin,["bar"]"#,
            &Packet::event("/admin", json!(["bar"]), None),
        );
        both_ways(
            r#"51-["baz",{"_placeholder":true,"num":0}]"#,
            &packet(
                PacketKind::BinaryEvent,
                "/",
                None,
                Some(json!(["baz", placeholder(0)])),
                1,
            ),
        );
    }

    #[test]
    fn spec_exchange_acknowledgement() {
        // with the main namespace
        both_ways(
            r#"212["foo"]"#,
            &Packet::event("/", json!(["foo"]), Some(12)),
        );
        both_ways("312[]", &Packet::ack("/", json!([]), 12));
        // with a custom namespace
        both_ways(
            r#"2/admin,13["foo"]"#,
            &Packet::event("/admin", json!(["foo"]), Some(13)),
        );
        both_ways(
            r#"3/admin,13["bar"]"#,
            &Packet::ack("/admin", json!(["bar"]), 13),
        );
        // with binary data
        both_ways(
            r#"51-14["foo",{"_placeholder":true,"num":0}]"#,
            &packet(
                PacketKind::BinaryEvent,
                "/",
                Some(14),
                Some(json!(["foo", placeholder(0)])),
                1,
            ),
        );
        both_ways(r#"314["bar"]"#, &Packet::ack("/", json!(["bar"]), 14));
        both_ways(
            r#"215["foo"]"#,
            &Packet::event("/", json!(["foo"]), Some(15)),
        );
        both_ways(
            r#"61-15["bar",{"_placeholder":true,"num":0}]"#,
            &packet(
                PacketKind::BinaryAck,
                "/",
                Some(15),
                Some(json!(["bar", placeholder(0)])),
                1,
            ),
        );
    }

    #[test]
    fn spec_exchange_disconnection() {
        both_ways("1", &Packet::disconnect("/"));
    }

    // --- "Sample session" (the Socket.IO part of each Engine.IO message) ----

    #[test]
    fn spec_sample_session() {
        both_ways("0", &Packet::connect("/", None));
        both_ways(
            r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#,
            &Packet::connect("/", Some(json!({"sid": "wZX3oN0bSVIhsaknAAAI"}))),
        );
        both_ways(
            r#"2["hey","Jude"]"#,
            &Packet::event("/", json!(["hey", "Jude"]), None),
        );
        both_ways(r#"2["hello"]"#, &Packet::event("/", json!(["hello"]), None));
        both_ways(r#"2["world"]"#, &Packet::event("/", json!(["world"]), None));
        both_ways("0/admin,", &Packet::connect("/admin", None));
        both_ways(
            r#"0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#,
            &Packet::connect("/admin", Some(json!({"sid": "-G5j-67EZFp-q59rADQM"}))),
        );
        both_ways(
            r#"2/admin,1["tellme"]"#,
            &Packet::event("/admin", json!(["tellme"]), Some(1)),
        );
        let binary_ack = packet(
            PacketKind::BinaryAck,
            "/admin",
            Some(1),
            Some(json!([placeholder(0)])),
            1,
        );
        both_ways(r#"61-/admin,1[{"_placeholder":true,"num":0}]"#, &binary_ack);
        let mut r = Reassembler::default();
        assert_eq!(r.push_packet(binary_ack.clone()), Ok(None));
        let complete = r.push_attachment(Bytes::from_static(b"<binary>"));
        assert_eq!(
            complete,
            Ok(Some(CompletePacket {
                packet: binary_ack,
                attachments: vec![Bytes::from_static(b"<binary>")],
            }))
        );
    }

    // --- socket.io-protocol test suite (the Socket.IO part of each frame) ----

    #[test]
    fn test_suite_connect() {
        both_ways(
            r#"0{"token":"123"}"#,
            &Packet::connect("/", Some(json!({"token": "123"}))),
        );
        both_ways("0/custom,", &Packet::connect("/custom", None));
        both_ways(
            r#"0/custom,{"token":"abc"}"#,
            &Packet::connect("/custom", Some(json!({"token": "abc"}))),
        );
        // A namespace may end the packet without a comma.
        assert_eq!(
            decode("0/random", MAX),
            Ok(Packet::connect("/random", None))
        );
        assert_eq!(
            decode("0/custom", MAX),
            Ok(Packet::connect("/custom", None))
        );
        both_ways(
            r#"4/random,{"message":"Invalid namespace"}"#,
            &Packet::connect_error("/random", "Invalid namespace"),
        );
        both_ways(
            r#"2["auth",{}]"#,
            &Packet::event("/", json!(["auth", {}]), None),
        );
        both_ways(
            r#"2["auth",{"token":"123"}]"#,
            &Packet::event("/", json!(["auth", {"token": "123"}]), None),
        );
        both_ways(
            r#"2/custom,["auth",{"token":"abc"}]"#,
            &Packet::event("/custom", json!(["auth", {"token": "abc"}]), None),
        );
        // "4abc" is an Engine.IO message whose Socket.IO part is "abc".
        assert_eq!(decode("abc", MAX), Err(DecodeError::UnknownKind('a')));
    }

    #[test]
    fn test_suite_disconnect() {
        both_ways("1", &Packet::disconnect("/"));
        assert_eq!(decode("1/custom", MAX), Ok(Packet::disconnect("/custom")));
        both_ways(
            r#"2["message","message to main namespace"]"#,
            &Packet::event("/", json!(["message", "message to main namespace"]), None),
        );
        both_ways(
            r#"2["message-back","message to main namespace"]"#,
            &Packet::event(
                "/",
                json!(["message-back", "message to main namespace"]),
                None,
            ),
        );
    }

    #[test]
    fn test_suite_messages() {
        both_ways(
            r#"2["message",1,"2",{"3":[true]}]"#,
            &Packet::event("/", json!(["message", 1, "2", {"3": [true]}]), None),
        );
        both_ways(
            r#"2["message-back",1,"2",{"3":[true]}]"#,
            &Packet::event("/", json!(["message-back", 1, "2", {"3": [true]}]), None),
        );
        both_ways(
            r#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            &packet(
                PacketKind::BinaryEvent,
                "/",
                None,
                Some(json!(["message", placeholder(0), placeholder(1)])),
                2,
            ),
        );
        both_ways(
            r#"2456["message-with-ack",1,"2",{"3":[false]}]"#,
            &Packet::event(
                "/",
                json!(["message-with-ack", 1, "2", {"3": [false]}]),
                Some(456),
            ),
        );
        both_ways(
            r#"3456[1,"2",{"3":[false]}]"#,
            &Packet::ack("/", json!([1, "2", {"3": [false]}]), 456),
        );
        both_ways(
            r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            &packet(
                PacketKind::BinaryEvent,
                "/",
                Some(789),
                Some(json!(["message-with-ack", placeholder(0), placeholder(1)])),
                2,
            ),
        );
        both_ways(
            r#"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            &packet(
                PacketKind::BinaryAck,
                "/",
                Some(789),
                Some(json!([placeholder(0), placeholder(1)])),
                2,
            ),
        );
    }

    #[test]
    fn test_suite_invalid_packets() {
        // unknown packet type
        assert_eq!(decode("abc", MAX), Err(DecodeError::UnknownKind('a')));
        // invalid payload format
        assert_eq!(
            decode("2{}", MAX),
            Err(DecodeError::InvalidPayload {
                kind: PacketKind::Event,
                reason: "expected a non-empty array"
            })
        );
        // invalid ack id
        assert!(matches!(
            decode(r#"2abc["message-with-ack",1,"2",{"3":[false]}]"#, MAX),
            Err(DecodeError::BadJson(_))
        ));
    }

    // --- validation rules ---------------------------------------------------

    #[test]
    fn payload_shapes() {
        let err = |kind, reason| Err(DecodeError::InvalidPayload { kind, reason });
        use PacketKind::*;
        assert_eq!(
            decode("0[]", MAX),
            err(Connect, "expected an object or nothing")
        );
        assert_eq!(
            decode("0null", MAX),
            err(Connect, "expected an object or nothing")
        );
        assert_eq!(
            decode(r#"0"x""#, MAX),
            err(Connect, "expected an object or nothing")
        );
        assert_eq!(decode("1{}", MAX), err(Disconnect, "expected no payload"));
        assert_eq!(
            decode("1/a,[]", MAX),
            err(Disconnect, "expected no payload")
        );
        assert_eq!(decode("2", MAX), err(Event, "expected a non-empty array"));
        assert_eq!(decode("2[]", MAX), err(Event, "expected a non-empty array"));
        assert_eq!(
            decode("2/a,", MAX),
            err(Event, "expected a non-empty array")
        );
        assert!(
            decode("2[1,2]", MAX).is_ok(),
            "a numeric name, as the reference"
        );
        assert_eq!(
            decode("2[null]", MAX),
            err(Event, "the event name must be a string or a number")
        );
        assert_eq!(
            decode("2\"x\"", MAX),
            err(Event, "expected a non-empty array")
        );
        assert_eq!(decode("31{}", MAX), err(Ack, "expected an array"));
        assert_eq!(decode("31", MAX), err(Ack, "expected an array"));
        assert_eq!(
            decode("4", MAX),
            err(ConnectError, "expected an object or a string")
        );
        assert_eq!(
            decode("4[]", MAX),
            err(ConnectError, "expected an object or a string")
        );
        assert_eq!(
            decode(r#"4"Not authorized""#, MAX),
            Ok(packet(
                ConnectError,
                "/",
                None,
                Some(json!("Not authorized")),
                0
            ))
        );
        assert_eq!(
            decode("51-{}", MAX),
            err(BinaryEvent, "expected a non-empty array")
        );
        assert_eq!(decode("61-1{}", MAX), err(BinaryAck, "expected an array"));
    }

    #[test]
    fn ack_ids() {
        assert_eq!(
            decode("3[]", MAX),
            Err(DecodeError::MissingAckId(PacketKind::Ack))
        );
        assert_eq!(
            decode("61-[{\"_placeholder\":true,\"num\":0}]", MAX),
            Err(DecodeError::MissingAckId(PacketKind::BinaryAck))
        );
        assert_eq!(
            decode("01{}", MAX),
            Err(DecodeError::UnexpectedAckId(PacketKind::Connect))
        );
        assert_eq!(
            decode("1/a,1", MAX),
            Err(DecodeError::UnexpectedAckId(PacketKind::Disconnect))
        );
        assert_eq!(
            decode("41{}", MAX),
            Err(DecodeError::UnexpectedAckId(PacketKind::ConnectError))
        );
        both_ways(
            r#"218446744073709551615["e"]"#,
            &Packet::event("/", json!(["e"]), Some(u64::MAX)),
        );
        assert_eq!(
            decode(r#"218446744073709551616["e"]"#, MAX),
            Err(DecodeError::BadAckId)
        );
        assert_eq!(
            decode(r#"2/a,99999999999999999999999["e"]"#, MAX),
            Err(DecodeError::BadAckId)
        );
        assert_eq!(
            decode(r#"20["e"]"#, MAX),
            Ok(Packet::event("/", json!(["e"]), Some(0)))
        );
    }

    #[test]
    fn reserved_events_are_rejected() {
        for name in RESERVED_EVENTS {
            let wire = format!(r#"2["{name}"]"#);
            assert_eq!(
                decode(&wire, MAX),
                Err(DecodeError::ReservedEvent((*name).to_owned()))
            );
            let wire = format!(r#"51-["{name}",{{"_placeholder":true,"num":0}}]"#);
            assert_eq!(
                decode(&wire, MAX),
                Err(DecodeError::ReservedEvent((*name).to_owned()))
            );
        }
        // Ack payloads are not event names.
        assert!(decode(r#"31["connect"]"#, MAX).is_ok());
    }

    #[test]
    fn attachment_counts() {
        let bad = Err(DecodeError::BadAttachments);
        assert_eq!(decode("5", MAX), bad);
        assert_eq!(decode(r#"5["a"]"#, MAX), bad);
        assert_eq!(decode(r#"5-["a"]"#, MAX), bad);
        assert_eq!(decode(r#"50-["a"]"#, MAX), bad);
        assert_eq!(decode(r#"51["a"]"#, MAX), bad);
        assert_eq!(decode(r#"5a-["a"]"#, MAX), bad);
        assert_eq!(decode("6", MAX), bad);
        let too_many = Err(DecodeError::TooManyAttachments { max: MAX });
        assert_eq!(decode(r#"511-["a"]"#, MAX), too_many);
        assert_eq!(decode(r#"599999999999999999999999-["a"]"#, MAX), too_many);
        assert_eq!(
            decode(r#"51-["a"]"#, 0),
            Err(DecodeError::TooManyAttachments { max: 0 })
        );
        // The limit itself is allowed; placeholders are not required.
        assert_eq!(
            decode(r#"510-["a"]"#, MAX),
            Ok(packet(
                PacketKind::BinaryEvent,
                "/",
                None,
                Some(json!(["a"])),
                10
            ))
        );
        // Non-binary kinds have no count: "-" is just bad JSON there.
        assert!(matches!(
            decode(r#"21-["a"]"#, MAX),
            Err(DecodeError::BadJson(_))
        ));
    }

    #[test]
    fn placeholders_are_checked_in_binary_packets() {
        let bad = Err(DecodeError::BadPlaceholder);
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":1}]"#, MAX),
            bad
        );
        assert_eq!(decode(r#"51-["a",{"_placeholder":true}]"#, MAX), bad);
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":-1}]"#, MAX),
            bad
        );
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":0.5}]"#, MAX),
            bad
        );
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":"0"}]"#, MAX),
            bad
        );
        assert_eq!(
            decode(r#"52-["a",{"x":[{"_placeholder":true,"num":2}]}]"#, MAX),
            bad
        );
        // Nested placeholders are fine when in range.
        assert!(decode(r#"52-["a",{"x":[{"_placeholder":true,"num":1}]}]"#, MAX).is_ok());
        // "_placeholder": false is plain data.
        assert!(decode(r#"51-["a",{"_placeholder":false,"num":7}]"#, MAX).is_ok());
        // Non-binary packets do not interpret placeholders.
        assert!(decode(r#"2["a",{"_placeholder":true,"num":7}]"#, MAX).is_ok());
    }

    #[test]
    fn namespaces() {
        both_ways("0/a/b,", &Packet::connect("/a/b", None));
        both_ways(r#"2/é,["x"]"#, &Packet::event("/é", json!(["x"]), None));
        // An explicit "/" namespace decodes to the main namespace.
        assert_eq!(
            decode(r#"2/,["x"]"#, MAX),
            Ok(Packet::event("/", json!(["x"]), None))
        );
        // Without a leading slash there is no namespace: the rest must be JSON.
        assert!(matches!(
            decode(r#"2admin,["x"]"#, MAX),
            Err(DecodeError::BadJson(_))
        ));
        // An empty namespace is encoded as the main namespace.
        assert_eq!(encode(&Packet::event("", json!(["x"]), None)), r#"2["x"]"#);
    }

    #[test]
    fn json_errors() {
        assert!(matches!(decode("2[", MAX), Err(DecodeError::BadJson(_))));
        assert!(matches!(
            decode(r#"2["a"]x"#, MAX),
            Err(DecodeError::BadJson(_))
        ));
        let deep = format!("2{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(decode(&deep, MAX), Err(DecodeError::BadJson(_))));
        // Whitespace around JSON is accepted, as JSON.parse does.
        assert_eq!(
            decode(r#"2 ["a"] "#, MAX),
            Ok(Packet::event("/", json!(["a"]), None))
        );
    }

    #[test]
    fn empty_and_unknown() {
        assert_eq!(decode("", MAX), Err(DecodeError::Empty));
        assert_eq!(decode("7", MAX), Err(DecodeError::UnknownKind('7')));
        assert_eq!(decode("€", MAX), Err(DecodeError::UnknownKind('€')));
    }

    #[test]
    fn write_header_for_broadcasts() {
        let mut out = String::new();
        write_header(&mut out, PacketKind::Event, 0, "/", None);
        out.push_str(r#"["tick",1]"#);
        assert_eq!(out, r#"2["tick",1]"#);

        let mut out = String::new();
        write_header(&mut out, PacketKind::BinaryEvent, 2, "/admin", Some(7));
        assert_eq!(out, "52-/admin,7");

        // The attachment count is ignored for non-binary kinds.
        let mut out = String::new();
        write_header(&mut out, PacketKind::Ack, 3, "/", Some(1));
        assert_eq!(out, "31");

        let mut out = String::from("4");
        write_header(&mut out, PacketKind::Disconnect, 0, "/chat", None);
        assert_eq!(out, "41/chat,");
    }

    #[test]
    fn kinds() {
        use PacketKind::*;
        let all = [
            Connect,
            Disconnect,
            Event,
            Ack,
            ConnectError,
            BinaryEvent,
            BinaryAck,
        ];
        for (n, kind) in all.into_iter().enumerate() {
            assert_eq!(kind as usize, n);
            assert_eq!(kind.as_char().to_digit(10), Some(n as u32));
            assert_eq!(PacketKind::from_char(kind.as_char()), Some(kind));
            assert_eq!(kind.is_binary(), n >= 5);
        }
        assert_eq!(PacketKind::from_char('7'), None);
    }

    #[test]
    fn placeholder_helpers() {
        assert_eq!(placeholder(3), json!({"_placeholder": true, "num": 3}));
        assert_eq!(
            placeholder(3).to_string(),
            r#"{"_placeholder":true,"num":3}"#
        );
        assert_eq!(placeholder_index(&placeholder(3)), Some(3));
        assert_eq!(
            placeholder_index(&json!({"_placeholder": false, "num": 3})),
            None
        );
        assert_eq!(
            placeholder_index(&json!({"_placeholder": "true", "num": 3})),
            None
        );
        assert_eq!(placeholder_index(&json!({"_placeholder": true})), None);
        assert_eq!(
            placeholder_index(&json!({"_placeholder": true, "num": -1})),
            None
        );
        assert_eq!(placeholder_index(&json!({"num": 3})), None);
        assert_eq!(placeholder_index(&json!([placeholder(0)])), None);
        assert_eq!(count_placeholders(&json!("x")), 0);
        assert_eq!(
            count_placeholders(&json!([
                "e",
                placeholder(0),
                {"a": [placeholder(1), {"b": placeholder(2)}]},
                {"_placeholder": false, "num": 9}
            ])),
            3
        );
    }

    #[test]
    fn event_names() {
        assert_eq!(
            Packet::event("/", json!(["x", 1]), None).event_name(),
            Some("x")
        );
        assert_eq!(Packet::ack("/", json!(["x"]), 1).event_name(), None);
        assert_eq!(Packet::connect("/", None).event_name(), None);
    }

    #[test]
    fn reassembler_protocol_violations() {
        let mut r = Reassembler::default();
        assert!(!r.is_pending());
        assert_eq!(
            r.push_attachment(Bytes::from_static(b"x")),
            Err(DecodeError::NoPendingPacket)
        );
        // Non-binary packets pass straight through.
        let event = Packet::event("/", json!(["a"]), None);
        assert_eq!(
            r.push_packet(event.clone()),
            Ok(Some(CompletePacket {
                packet: event.clone(),
                attachments: vec![],
            }))
        );
        // A binary packet with no attachments too.
        let empty_binary = packet(PacketKind::BinaryEvent, "/", None, Some(json!(["a"])), 0);
        assert_eq!(
            r.push_packet(empty_binary.clone()),
            Ok(Some(CompletePacket {
                packet: empty_binary,
                attachments: vec![],
            }))
        );
        let binary = packet(
            PacketKind::BinaryEvent,
            "/",
            None,
            Some(json!(["a", placeholder(0), placeholder(1)])),
            2,
        );
        assert_eq!(r.push_packet(binary.clone()), Ok(None));
        // Another packet before the attachments is a violation; the state is kept.
        assert_eq!(
            r.push_packet(event.clone()),
            Err(DecodeError::PacketPending)
        );
        assert_eq!(r.push_packet(binary), Err(DecodeError::PacketPending));
        assert_eq!(r.missing_attachments(), 2);
        r.clear();
        assert!(!r.is_pending());
        assert!(r.push_packet(event).is_ok());
        // A hand-made packet with a huge count does not allocate it up front.
        let huge = packet(
            PacketKind::BinaryAck,
            "/",
            Some(1),
            Some(json!([])),
            usize::MAX,
        );
        assert_eq!(r.push_packet(huge), Ok(None));
        assert_eq!(r.push_attachment(Bytes::new()), Ok(None));
        assert_eq!(r.missing_attachments(), usize::MAX - 1);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            DecodeError::TooManyAttachments { max: 10 }.to_string(),
            "binary Socket.IO packet declares more than 10 attachments"
        );
        assert_eq!(
            DecodeError::InvalidPayload {
                kind: PacketKind::Event,
                reason: "expected a non-empty array"
            }
            .to_string(),
            "invalid payload for a Event packet: expected a non-empty array"
        );
    }

    // --- properties ----------------------------------------------------------

    fn arb_json() -> impl Strategy<Value = Value> + Clone {
        // No floats: serde_json does not promise exact float round trips by default.
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_object() -> impl Strategy<Value = Value> + Clone {
        prop::collection::btree_map(".{0,8}", arb_json(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn arb_namespace() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just("/".to_owned()), "/[^,]{0,12}"]
    }

    fn arb_event_name() -> impl Strategy<Value = String> + Clone {
        // Cannot collide with a reserved name.
        "ev[a-zA-Z0-9_:-]{0,10}"
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        let args = prop::collection::vec(arb_json(), 0..4);
        let connect = (arb_namespace(), prop::option::of(arb_object()))
            .prop_map(|(nsp, data)| packet(PacketKind::Connect, &nsp, None, data, 0));
        let disconnect =
            arb_namespace().prop_map(|nsp| packet(PacketKind::Disconnect, &nsp, None, None, 0));
        let connect_error = (
            arb_namespace(),
            prop_oneof![arb_object(), ".{0,12}".prop_map(Value::String)],
        )
            .prop_map(|(nsp, data)| packet(PacketKind::ConnectError, &nsp, None, Some(data), 0));
        let event = (
            arb_namespace(),
            arb_event_name(),
            args.clone(),
            prop::option::of(any::<u64>()),
        )
            .prop_map(|(nsp, name, mut args, id)| {
                args.insert(0, Value::String(name));
                packet(PacketKind::Event, &nsp, id, Some(Value::Array(args)), 0)
            });
        let ack = (arb_namespace(), args.clone(), any::<u64>()).prop_map(|(nsp, args, id)| {
            packet(PacketKind::Ack, &nsp, Some(id), Some(Value::Array(args)), 0)
        });
        let binary_event = (
            arb_namespace(),
            arb_event_name(),
            args.clone(),
            prop::option::of(any::<u64>()),
            1..=MAX,
        )
            .prop_map(|(nsp, name, mut args, id, n)| {
                args.insert(0, Value::String(name));
                args.extend((0..n).map(placeholder));
                packet(
                    PacketKind::BinaryEvent,
                    &nsp,
                    id,
                    Some(Value::Array(args)),
                    n,
                )
            });
        let binary_ack =
            (arb_namespace(), args, any::<u64>(), 1..=MAX).prop_map(|(nsp, mut args, id, n)| {
                args.push(Value::Array((0..n).map(placeholder).collect()));
                packet(
                    PacketKind::BinaryAck,
                    &nsp,
                    Some(id),
                    Some(Value::Array(args)),
                    n,
                )
            });
        prop_oneof![
            connect,
            disconnect,
            connect_error,
            event,
            ack,
            binary_event,
            binary_ack
        ]
    }

    /// Either raw text or a binary attachment, fed to the reassembler in any order.
    #[derive(Debug, Clone)]
    enum Input {
        Text(String),
        Binary(Vec<u8>),
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            "[0-6][0-9]{0,2}-?(/[a-z,]{0,4})?[0-9]{0,2}(\\[.{0,8}\\]|\\{.{0,8}\\})?"
                .prop_map(Input::Text),
            r#"[56][1-3]-[0-9]{0,2}\["e",\{"_placeholder":true,"num":[0-3]\}\]"#
                .prop_map(Input::Text),
            ".{0,16}".prop_map(Input::Text),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(Input::Binary),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".*", max in 0usize..20) {
            let _ = decode(&s, max);
        }

        #[test]
        fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(&String::from_utf8_lossy(&bytes), MAX);
        }

        #[test]
        fn decode_never_panics_near_grammar(
            s in "[0-9][0-9]{0,3}-?(/[^,]{0,6},?)?[0-9]{0,25}[\\[\\]{}\",:a-z0-9_ ]{0,20}"
        ) {
            let _ = decode(&s, MAX);
        }

        #[test]
        fn round_trip(p in arb_packet()) {
            let text = encode(&p);
            prop_assert_eq!(decode(&text, MAX), Ok(p.clone()));
            // Header + payload written separately give the same text.
            let mut out = String::new();
            write_header(&mut out, p.kind, p.attachments, &p.namespace, p.id);
            if let Some(data) = &p.data {
                out.push_str(&serde_json::to_string(data).unwrap_or_default());
            }
            prop_assert_eq!(out, text);
        }

        #[test]
        fn decoded_packets_re_encode(
            s in "[0-6][0-9]{0,2}-?(/[a-z]{0,4},)?[0-9]{0,3}(\\[\"e\"(,[0-9a-z\"]{1,3}){0,3}\\]|\\{\\})?"
        ) {
            if let Ok(p) = decode(&s, MAX) {
                prop_assert_eq!(decode(&encode(&p), MAX), Ok(p));
            }
        }

        #[test]
        fn reassembler_never_panics(inputs in prop::collection::vec(arb_input(), 0..16)) {
            let mut r = Reassembler::default();
            for input in inputs {
                let was_pending = r.is_pending();
                match input {
                    Input::Text(text) => {
                        if let Ok(p) = decode(&text, MAX) {
                            let result = r.push_packet(p);
                            if was_pending {
                                prop_assert_eq!(result, Err(DecodeError::PacketPending));
                            }
                        }
                    }
                    Input::Binary(bytes) => {
                        let result = r.push_attachment(Bytes::from(bytes));
                        if !was_pending {
                            prop_assert_eq!(result, Err(DecodeError::NoPendingPacket));
                        } else if let Ok(Some(complete)) = result {
                            prop_assert_eq!(
                                complete.attachments.len(),
                                complete.packet.attachments
                            );
                            prop_assert!(!r.is_pending());
                        }
                    }
                }
            }
        }

        #[test]
        fn reassembler_collects_every_attachment(
            p in arb_packet(),
            blobs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), MAX)
        ) {
            let mut r = Reassembler::default();
            let n = p.attachments;
            let first = r.push_packet(p.clone());
            if n == 0 {
                prop_assert_eq!(first, Ok(Some(CompletePacket { packet: p, attachments: vec![] })));
                return Ok(());
            }
            prop_assert_eq!(first, Ok(None));
            let blobs: Vec<Bytes> = blobs.into_iter().take(n).map(Bytes::from).collect();
            for (i, blob) in blobs.iter().enumerate() {
                let out = r.push_attachment(blob.clone());
                if i + 1 < n {
                    prop_assert_eq!(out, Ok(None));
                } else {
                    let complete = CompletePacket { packet: p.clone(), attachments: blobs.clone() };
                    prop_assert_eq!(out, Ok(Some(complete)));
                }
            }
            prop_assert!(!r.is_pending());
        }
    }
}
