//! Encoding outgoing Socket.IO packets into Engine.IO frames, once per emit.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::engine::Frame;
use crate::protocol::engineio;
use crate::protocol::socketio::{self, PacketKind};

/// Arguments of an event or ack, and the binary attachments their placeholders refer to.
///
/// Binary data travels out of band: in `args`, an attachment is the placeholder object
/// `{"_placeholder": true, "num": i}` (see [`Payload::placeholder`]) and its bytes are
/// `attachments[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// The arguments, in order.
    pub args: Vec<Value>,
    /// Binary attachments referenced by placeholders in `args`.
    pub attachments: Vec<Bytes>,
}

impl Payload {
    /// A payload of plain JSON arguments.
    pub fn new(args: Vec<Value>) -> Self {
        Self {
            args,
            attachments: Vec::new(),
        }
    }

    /// Add an attachment and return the placeholder to put where it belongs in `args`.
    ///
    /// ```
    /// use swarmcast::Payload;
    /// let mut p = Payload::default();
    /// let ph = p.attach(bytes::Bytes::from_static(b"\x01\x02"));
    /// p.args.push(serde_json::json!({"image": ph}));
    /// assert_eq!(p.attachments.len(), 1);
    /// ```
    pub fn attach(&mut self, data: Bytes) -> Value {
        let placeholder = Self::placeholder(self.attachments.len());
        self.attachments.push(data);
        placeholder
    }

    /// The placeholder object for attachment `num`.
    pub fn placeholder(num: usize) -> Value {
        socketio::placeholder(num)
    }

    /// Replace every placeholder in `value` by what `f` makes of its attachment (for
    /// bindings that turn attachments into native byte strings).
    pub fn resolve_placeholders<F>(&self, value: &Value, f: &mut F) -> Value
    where
        F: FnMut(&Bytes) -> Value,
    {
        if let Some(num) = socketio::placeholder_index(value) {
            if let Some(data) = self.attachments.get(num) {
                return f(data);
            }
        }
        match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_placeholders(v, f))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.resolve_placeholders(v, f)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The data does not serialise to JSON.
    #[error("cannot encode payload as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Event names that Socket.IO reserves cannot be emitted.
    #[error("`{0}` is a reserved event name")]
    ReservedEvent(String),
}

/// An encoded packet: its Engine.IO text frame then one binary frame per attachment.
/// Cloning shares the buffers.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub frames: Vec<Frame>,
}

impl Encoded {
    pub fn size(&self) -> usize {
        self.frames.iter().map(Frame::len).sum()
    }
}

/// Writes the arguments of an event or ack after what is already in the buffer: each
/// argument preceded by a comma. `Fn`, not `FnOnce`, so that it can travel as a
/// `&dyn` through the adapter.
pub(crate) type WriteArgs<'a> = &'a (dyn Fn(&mut Vec<u8>) -> serde_json::Result<()> + 'a);

/// Encode one Socket.IO packet as Engine.IO frames: the MESSAGE type, the Socket.IO
/// header (both from `protocol`), the JSON body `write_body` writes, then the
/// attachments. Every packet the server sends is encoded here.
fn encode_packet(
    kind: PacketKind,
    namespace: &str,
    id: Option<u64>,
    attachments: &[Bytes],
    write_body: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> Result<Encoded, EncodeError> {
    let kind = match (kind, attachments.is_empty()) {
        (PacketKind::Event, false) => PacketKind::BinaryEvent,
        (PacketKind::Ack, false) => PacketKind::BinaryAck,
        (kind, _) => kind,
    };
    let mut header = String::with_capacity(64);
    header.push(engineio::PacketType::Message.as_char());
    socketio::write_header(&mut header, kind, attachments.len(), namespace, id);
    let mut buf = header.into_bytes();
    write_body(&mut buf)?;
    // serde_json only writes valid UTF-8 and the header is ASCII, so this cannot fail;
    // the check is a cheap linear scan, done once per emit, not per recipient.
    let text = String::from_utf8(buf).map_err(|e| {
        EncodeError::Json(serde_json::Error::io(std::io::Error::other(e.to_string())))
    })?;
    let mut frames = Vec::with_capacity(1 + attachments.len());
    frames.push(Frame::text(text));
    frames.extend(attachments.iter().cloned().map(Frame::binary));
    Ok(Encoded { frames })
}

/// Refuse the event names Socket.IO reserves for itself.
pub(crate) fn check_event_name(event: &str) -> Result<(), EncodeError> {
    if socketio::RESERVED_EVENTS.contains(&event) {
        return Err(EncodeError::ReservedEvent(event.to_string()));
    }
    Ok(())
}

/// An EVENT: `["event", <args written by write_args>, "offset"?]`. The recovery offset,
/// when given, is the last argument.
pub(crate) fn encode_event(
    namespace: &str,
    event: &str,
    id: Option<u64>,
    attachments: &[Bytes],
    write_args: WriteArgs<'_>,
    offset: Option<&str>,
) -> Result<Encoded, EncodeError> {
    check_event_name(event)?;
    encode_packet(PacketKind::Event, namespace, id, attachments, |buf| {
        buf.push(b'[');
        serde_json::to_writer(&mut *buf, event)?;
        write_args(buf)?;
        if let Some(offset) = offset {
            buf.push(b',');
            serde_json::to_writer(&mut *buf, offset)?;
        }
        buf.push(b']');
        Ok(())
    })
}

/// Writes one argument, preceded by a comma.
pub(crate) fn write_one<T: Serialize + ?Sized>(
    data: &T,
) -> impl Fn(&mut Vec<u8>) -> serde_json::Result<()> + '_ {
    move |buf| {
        buf.push(b',');
        serde_json::to_writer(buf, data)
    }
}

/// Writes every argument of a payload, each preceded by a comma.
pub(crate) fn write_args(args: &[Value]) -> impl Fn(&mut Vec<u8>) -> serde_json::Result<()> + '_ {
    move |buf| {
        for arg in args {
            buf.push(b',');
            serde_json::to_writer(&mut *buf, arg)?;
        }
        Ok(())
    }
}

/// An ACK answering `id`.
pub(crate) fn encode_ack(
    namespace: &str,
    id: u64,
    payload: &Payload,
) -> Result<Encoded, EncodeError> {
    encode_packet(
        PacketKind::Ack,
        namespace,
        Some(id),
        &payload.attachments,
        |buf| serde_json::to_writer(&mut *buf, &payload.args),
    )
}

/// CONNECT reply (`{"sid": ...}`), CONNECT_ERROR or DISCONNECT.
pub(crate) fn encode_control(
    kind: PacketKind,
    namespace: &str,
    body: Option<&Value>,
) -> Result<Encoded, EncodeError> {
    encode_packet(kind, namespace, None, &[], |buf| match body {
        Some(body) => serde_json::to_writer(&mut *buf, body),
        None => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::socketio::Reassembler;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(e: &Encoded) -> &str {
        e.frames[0].as_text().expect("first frame is text")
    }

    fn event<T: Serialize>(ns: &str, name: &str, data: &T, id: Option<u64>) -> Encoded {
        encode_event(ns, name, id, &[], &write_one(data), None).expect("encodes")
    }

    #[test]
    fn event_on_default_and_custom_namespace() {
        let e = event("/", "tick", &json!({"seq": 1}), None);
        assert_eq!(text(&e), r#"42["tick",{"seq":1}]"#);
        let e = event("/admin", "tick", &1, Some(12));
        assert_eq!(text(&e), r#"42/admin,12["tick",1]"#);
    }

    #[test]
    fn binary_event_carries_attachments() {
        let mut p = Payload::default();
        let ph = p.attach(Bytes::from_static(&[1, 2, 3]));
        p.args.push(json!({"img": ph}));
        let e = encode_event(
            "/",
            "photo",
            None,
            &p.attachments,
            &write_args(&p.args),
            None,
        )
        .expect("encodes");
        assert_eq!(
            text(&e),
            r#"451-["photo",{"img":{"_placeholder":true,"num":0}}]"#
        );
        assert_eq!(e.frames[1], Frame::binary(Bytes::from_static(&[1, 2, 3])));
    }

    #[test]
    fn acks_and_control_packets() {
        let e = encode_ack("/", 5, &Payload::new(vec![json!("ok")])).expect("encodes");
        assert_eq!(text(&e), r#"435["ok"]"#);
        let e = encode_control(PacketKind::Connect, "/chat", Some(&json!({"sid": "x"})))
            .expect("encodes");
        assert_eq!(text(&e), r#"40/chat,{"sid":"x"}"#);
        let e = encode_control(PacketKind::Disconnect, "/", None).expect("encodes");
        assert_eq!(text(&e), "41");
    }

    #[test]
    fn recovery_offset_is_the_last_argument() {
        let e = encode_event("/", "tick", None, &[], &write_one(&1), Some("17")).expect("encodes");
        assert_eq!(text(&e), r#"42["tick",1,"17"]"#);
    }

    #[test]
    fn reserved_names_are_refused() {
        assert!(matches!(
            encode_event("/", "connect", None, &[], &write_one(&1), None),
            Err(EncodeError::ReservedEvent(_))
        ));
    }

    #[test]
    fn placeholders_resolve() {
        let mut p = Payload::default();
        let ph = p.attach(Bytes::from_static(b"hi"));
        let v = json!([1, {"x": ph}]);
        let out = p.resolve_placeholders(&v, &mut |b| json!(b.len()));
        assert_eq!(out, json!([1, {"x": 2}]));
    }

    /// Decode what the production encoder wrote, as a client would: Engine.IO frame,
    /// Socket.IO packet, attachments reassembled.
    fn decode(encoded: &Encoded) -> socketio::CompletePacket {
        let engineio::Packet::Message(engineio::Message::Text(body)) =
            engineio::decode_text(text(encoded)).expect("an Engine.IO packet")
        else {
            panic!("not a text message");
        };
        let packet = socketio::decode(body, 64).expect("a Socket.IO packet");
        let mut reassembler = Reassembler::default();
        let mut complete = reassembler.push_packet(packet).expect("header ok");
        for frame in &encoded.frames[1..] {
            let data = frame.as_binary().expect("attachments are binary").clone();
            complete = reassembler.push_attachment(data).expect("attachment ok");
        }
        complete.expect("every attachment arrived")
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The encoder that ships round-trips through the decoder: event name,
        /// arguments, namespace, ack id, attachments and recovery offset.
        #[test]
        fn production_events_round_trip(
            namespace in prop_oneof![Just("/".to_string()), "/[a-z]{1,8}"],
            name in "\\PC{1,12}".prop_filter("not reserved", |n| check_event_name(n).is_ok()),
            args in prop::collection::vec(json_value(), 0..4),
            id in proptest::option::of(0u64..1_000_000),
            blobs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..3),
            offset in proptest::option::of("[0-9]{1,6}"),
        ) {
            let mut payload = Payload::new(args.clone());
            for blob in &blobs {
                let placeholder = payload.attach(Bytes::from(blob.clone()));
                payload.args.push(placeholder);
            }
            let encoded = encode_event(
                &namespace, &name, id, &payload.attachments,
                &write_args(&payload.args), offset.as_deref(),
            ).expect("encodes");
            let complete = decode(&encoded);
            prop_assert_eq!(&complete.packet.namespace, &namespace);
            prop_assert_eq!(complete.packet.id, id);
            let mut expected = vec![Value::from(name.clone())];
            expected.extend(payload.args.iter().cloned());
            if let Some(offset) = &offset {
                expected.push(Value::from(offset.clone()));
            }
            prop_assert_eq!(complete.packet.data, Some(Value::Array(expected)));
            prop_assert_eq!(complete.attachments, payload.attachments);
        }

        /// Acks and control packets round-trip too.
        #[test]
        fn production_acks_round_trip(
            id in 0u64..1_000_000,
            args in prop::collection::vec(json_value(), 0..4),
        ) {
            let encoded = encode_ack("/chat", id, &Payload::new(args.clone())).expect("encodes");
            let complete = decode(&encoded);
            prop_assert_eq!(complete.packet.kind, PacketKind::Ack);
            prop_assert_eq!(complete.packet.id, Some(id));
            prop_assert_eq!(complete.packet.data, Some(Value::Array(args)));
        }
    }
}
