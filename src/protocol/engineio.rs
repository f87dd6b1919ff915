//! Engine.IO protocol, revision 4: packets, the handshake and long-polling payloads.
//!
//! An Engine.IO packet is a type digit followed by an optional payload:
//!
//! | type    | digit | example on the wire                 |
//! |---------|-------|-------------------------------------|
//! | open    | `0`   | `0{"sid":"...","upgrades":[...],...}` |
//! | close   | `1`   | `1`                                 |
//! | ping    | `2`   | `2`, or `2probe` during an upgrade  |
//! | pong    | `3`   | `3`, or `3probe` during an upgrade  |
//! | message | `4`   | `4hello`                            |
//! | upgrade | `5`   | `5`                                 |
//! | noop    | `6`   | `6`                                 |
//!
//! On WebSocket every packet travels in its own frame: text packets in text
//! frames ([`decode_text`]), binary messages as raw binary frames with no type
//! prefix ([`decode_binary`]).
//!
//! On HTTP long-polling several packets share one body, separated by
//! [`SEPARATOR`] (`0x1e`); a binary message is written as `b` followed by its
//! standard base64 encoding ([`decode_payload`], [`encode_payload`],
//! [`write_payload_frame`]).
//!
//! ```
//! use swarmcast::protocol::engineio::{self, Frame, Message, Packet};
//!
//! let body = "4hello\u{1e}bAQIDBA==";
//! let packets: Vec<_> = engineio::decode_payload(body).collect::<Result<_, _>>()?;
//! assert_eq!(packets[0], Packet::Message(Message::Text("hello")));
//! assert_eq!(packets[1], Packet::Message(Message::Binary(vec![1, 2, 3, 4].into())));
//!
//! let again = engineio::encode_payload([Frame::Text("4hello"), Frame::Binary(&[1, 2, 3, 4])]);
//! assert_eq!(again, body);
//! # Ok::<(), engineio::DecodeError>(())
//! ```

use std::borrow::Cow;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// The record separator (`0x1e`) between packets of a long-polling payload.
pub const SEPARATOR: char = '\u{1e}';

/// Base64 decoder for incoming `b` segments: standard alphabet, padding
/// optional and non-zero trailing bits tolerated, as the reference server
/// (Node's `Buffer.from(data, "base64")`) is lenient too. Encoding always uses
/// the canonical padded form ([`STANDARD`]).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Packet type digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: sent by the server to open a session, with the [`Handshake`].
    Open = 0,
    /// `1`: asks the other side to close the transport.
    Close = 1,
    /// `2`: heartbeat request (sent by the server), or `2probe` from the client during an upgrade.
    Ping = 2,
    /// `3`: heartbeat answer, or `3probe` from the server during an upgrade.
    Pong = 3,
    /// `4`: an application message.
    Message = 4,
    /// `5`: sent by the client to complete a transport upgrade.
    Upgrade = 5,
    /// `6`: no operation; ends a pending long-poll during an upgrade.
    Noop = 6,
}

impl PacketType {
    /// The packet type for an ASCII digit `'0'..='6'`, `None` for anything else.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '0' => Self::Open,
            '1' => Self::Close,
            '2' => Self::Ping,
            '3' => Self::Pong,
            '4' => Self::Message,
            '5' => Self::Upgrade,
            '6' => Self::Noop,
            _ => return None,
        })
    }

    /// The digit that starts an encoded packet of this type.
    pub fn as_char(self) -> char {
        match self {
            Self::Open => '0',
            Self::Close => '1',
            Self::Ping => '2',
            Self::Pong => '3',
            Self::Message => '4',
            Self::Upgrade => '5',
            Self::Noop => '6',
        }
    }
}

/// The handshake object sent in the OPEN packet.
///
/// Serialised in camelCase:
/// `{"sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The session id; the client sends it back as the `sid` query parameter.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` on polling, `[]` on WebSocket).
    pub upgrades: Vec<String>,
    /// Milliseconds between two server pings.
    pub ping_interval: u64,
    /// Milliseconds the client has to answer a ping.
    pub ping_timeout: u64,
    /// Largest long-polling body, in bytes, the client may send.
    pub max_payload: u64,
}

impl Handshake {
    /// Encode as a text OPEN packet: `0` followed by the JSON object.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(96 + self.sid.len());
        self.write_packet(&mut out);
        out
    }

    /// Parse the JSON object of an OPEN packet (the text after the `0`).
    pub fn from_json(json: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(json).map_err(|e| DecodeError::BadHandshake(e.to_string()))
    }

    fn write_packet(&self, out: &mut String) {
        out.push(PacketType::Open.as_char());
        // Serialising strings, a list of strings and integers cannot fail.
        if let Ok(json) = serde_json::to_string(self) {
            out.push_str(&json);
        }
    }
}

/// A message payload: text or binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (the part after the `4` of a text packet).
    Text(&'a str),
    /// A binary message: borrowed from a WebSocket binary frame, or owned
    /// when decoded from base64 in a long-polling body.
    Binary(Cow<'a, [u8]>),
}

/// A decoded Engine.IO packet; borrows from the input where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Opens a session.
    Open(Handshake),
    /// Closes the transport.
    Close,
    /// Heartbeat or probe; the payload after the digit: `""` normally, `"probe"` during an upgrade.
    Ping(&'a str),
    /// Answer to a ping; same payload convention as [`Packet::Ping`].
    Pong(&'a str),
    /// An application message.
    Message(Message<'a>),
    /// Completes a transport upgrade.
    Upgrade,
    /// Does nothing; used to end a pending long-poll during an upgrade.
    Noop,
}

impl Packet<'_> {
    /// The type of this packet.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Open(_) => PacketType::Open,
            Packet::Close => PacketType::Close,
            Packet::Ping(_) => PacketType::Ping,
            Packet::Pong(_) => PacketType::Pong,
            Packet::Message(_) => PacketType::Message,
            Packet::Upgrade => PacketType::Upgrade,
            Packet::Noop => PacketType::Noop,
        }
    }
}

/// One encoded packet as it travels in one WebSocket frame.
///
/// `Text` holds a whole encoded text packet (`"4hello"`, `"2"`), `Binary` the
/// raw bytes of a binary message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An encoded text packet, type digit included.
    Text(&'a str),
    /// The bytes of a binary message.
    Binary(&'a [u8]),
}

/// Why a text frame or a long-polling segment could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame or segment is empty, so it has no packet type.
    #[error("empty Engine.IO packet")]
    Empty,
    /// The first character is not a packet type digit `0`..`6`.
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownType(char),
    /// A `b` segment of a long-polling body is not valid base64.
    #[error("invalid base64 in a binary Engine.IO packet")]
    BadBase64,
    /// The JSON of an OPEN packet is not a valid handshake object.
    #[error("invalid Engine.IO handshake: {0}")]
    BadHandshake(String),
}

/// Decode one WebSocket text frame (or one polling segment that is not
/// base64): the first character is the type digit.
///
/// The payload of `close`, `upgrade` and `noop` packets is ignored, as the
/// reference implementation does.
pub fn decode_text(frame: &str) -> Result<Packet<'_>, DecodeError> {
    let mut chars = frame.chars();
    let first = chars.next().ok_or(DecodeError::Empty)?;
    let rest = chars.as_str();
    let ty = PacketType::from_char(first).ok_or(DecodeError::UnknownType(first))?;
    Ok(match ty {
        PacketType::Open => Packet::Open(Handshake::from_json(rest)?),
        PacketType::Close => Packet::Close,
        PacketType::Ping => Packet::Ping(rest),
        PacketType::Pong => Packet::Pong(rest),
        PacketType::Message => Packet::Message(Message::Text(rest)),
        PacketType::Upgrade => Packet::Upgrade,
        PacketType::Noop => Packet::Noop,
    })
}

/// Decode one WebSocket binary frame: in v4 it is a binary message with no
/// type prefix, so this never fails.
pub fn decode_binary(frame: &[u8]) -> Packet<'_> {
    Packet::Message(Message::Binary(Cow::Borrowed(frame)))
}

/// Decode one segment of a long-polling body (the text between two
/// separators): `b` + base64 is a binary message, anything else a text packet.
pub fn decode_segment(segment: &str) -> Result<Packet<'_>, DecodeError> {
    match segment.strip_prefix('b') {
        Some(b64) => LENIENT_BASE64
            .decode(b64)
            .map(|bytes| Packet::Message(Message::Binary(Cow::Owned(bytes))))
            .map_err(|_| DecodeError::BadBase64),
        None => decode_text(segment),
    }
}

/// Decode a long-polling request body: packets separated by `0x1e`; a segment
/// starting with `b` is base64 binary (owned `Cow`).
///
/// Every segment yields one item, so an empty body or two adjacent separators
/// yield [`DecodeError::Empty`]. Decoding is lazy: stop at the first error, or
/// bound the count with [`Iterator::take`].
pub fn decode_payload(body: &str) -> impl Iterator<Item = Result<Packet<'_>, DecodeError>> {
    body.split(SEPARATOR).map(decode_segment)
}

/// Encode one packet as a text frame: e.g. `Ping("probe")` -> `"2probe"`,
/// `Message(Text("hi"))` -> `"4hi"`, `Noop` -> `"6"`, `Open(h)` -> `"0{...}"`.
///
/// Binary messages cannot be text frames in WebSocket v4; for
/// `Message(Binary)` this returns `"b"` + base64 (the polling form). Send
/// binary messages on WebSocket as binary frames holding the bytes as they are.
pub fn encode_text(packet: &Packet<'_>) -> String {
    let mut out = String::new();
    write_text(&mut out, packet);
    out
}

/// Append the text encoding of `packet` (as [`encode_text`] returns it) to `out`.
pub fn write_text(out: &mut String, packet: &Packet<'_>) {
    match packet {
        Packet::Open(handshake) => handshake.write_packet(out),
        Packet::Close => out.push(PacketType::Close.as_char()),
        Packet::Ping(payload) => {
            out.push(PacketType::Ping.as_char());
            out.push_str(payload);
        }
        Packet::Pong(payload) => {
            out.push(PacketType::Pong.as_char());
            out.push_str(payload);
        }
        Packet::Message(Message::Text(text)) => {
            out.push(PacketType::Message.as_char());
            out.push_str(text);
        }
        Packet::Message(Message::Binary(bytes)) => write_base64(out, bytes),
        Packet::Upgrade => out.push(PacketType::Upgrade.as_char()),
        Packet::Noop => out.push(PacketType::Noop.as_char()),
    }
}

/// Append one frame to a long-polling response body: text as-is, binary as
/// `b` + standard base64; a `0x1e` separator before every frame except the
/// first (that is, whenever `out` is non-empty).
pub fn write_payload_frame(out: &mut String, frame: Frame<'_>) {
    if !out.is_empty() {
        out.push(SEPARATOR);
    }
    match frame {
        Frame::Text(text) => out.push_str(text),
        Frame::Binary(bytes) => write_base64(out, bytes),
    }
}

/// Encode several frames as one long-polling body.
pub fn encode_payload<'a>(frames: impl IntoIterator<Item = Frame<'a>>) -> String {
    let mut out = String::new();
    for frame in frames {
        write_payload_frame(&mut out, frame);
    }
    out
}

fn write_base64(out: &mut String, bytes: &[u8]) {
    out.reserve(1 + bytes.len().div_ceil(3) * 4);
    out.push('b');
    STANDARD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn handshake(sid: &str, upgrades: &[&str], interval: u64, timeout: u64) -> Handshake {
        Handshake {
            sid: sid.to_owned(),
            upgrades: upgrades.iter().map(|s| (*s).to_owned()).collect(),
            ping_interval: interval,
            ping_timeout: timeout,
            max_payload: 1_000_000,
        }
    }

    fn bin(bytes: &[u8]) -> Packet<'static> {
        Packet::Message(Message::Binary(Cow::Owned(bytes.to_vec())))
    }

    fn payload(body: &str) -> Vec<Packet<'_>> {
        decode_payload(body)
            .collect::<Result<_, _>>()
            .expect("valid payload")
    }

    // --- Engine.IO v4 spec, "Handshake" -------------------------------------

    #[test]
    fn spec_handshake_example() {
        let json = r#"{
  "sid": "lv_VI97HAXpY6yYWAAAC",
  "upgrades": ["websocket"],
  "pingInterval": 25000,
  "pingTimeout": 20000,
  "maxPayload": 1000000
}"#;
        let expected = handshake("lv_VI97HAXpY6yYWAAAC", &["websocket"], 25000, 20000);
        assert_eq!(Handshake::from_json(json), Ok(expected.clone()));
        let frame = format!("0{json}");
        assert_eq!(decode_text(&frame), Ok(Packet::Open(expected.clone())));
        assert_eq!(
            expected.encode(),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    // Socket.IO v5 spec, "Sample session", request n°1: the OPEN packet byte for byte.
    #[test]
    fn spec_sample_session_open_packet() {
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}"#;
        let h = handshake("lv_VI97HAXpY6yYWAAAC", &["websocket"], 25000, 5000);
        assert_eq!(h.encode(), wire);
        assert_eq!(encode_text(&Packet::Open(h.clone())), wire);
        assert_eq!(decode_text(wire), Ok(Packet::Open(h.clone())));
        // As a one-packet long-polling body.
        assert_eq!(payload(wire), vec![Packet::Open(h.clone())]);
        assert_eq!(encode_payload([Frame::Text(&h.encode())]), wire);
    }

    // The WebSocket-only handshake has no upgrades.
    #[test]
    fn handshake_without_upgrades() {
        let h = handshake("abc", &[], 300, 200);
        assert_eq!(
            h.encode(),
            r#"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
        assert_eq!(decode_text(&h.encode()), Ok(Packet::Open(h)));
    }

    #[test]
    fn bad_handshakes() {
        assert!(matches!(
            decode_text("0"),
            Err(DecodeError::BadHandshake(_))
        ));
        assert!(matches!(
            decode_text("0{}"),
            Err(DecodeError::BadHandshake(_))
        ));
        assert!(matches!(
            decode_text(
                r#"0{"sid":1,"upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}"#
            ),
            Err(DecodeError::BadHandshake(_))
        ));
    }

    // --- "Heartbeat" ---------------------------------------------------------

    #[test]
    fn spec_heartbeat() {
        assert_eq!(decode_text("2"), Ok(Packet::Ping("")));
        assert_eq!(decode_text("3"), Ok(Packet::Pong("")));
        assert_eq!(encode_text(&Packet::Ping("")), "2");
        assert_eq!(encode_text(&Packet::Pong("")), "3");
    }

    // --- "Upgrade" -----------------------------------------------------------

    #[test]
    fn spec_upgrade() {
        assert_eq!(decode_text("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(decode_text("3probe"), Ok(Packet::Pong("probe")));
        assert_eq!(decode_text("5"), Ok(Packet::Upgrade));
        assert_eq!(decode_text("6"), Ok(Packet::Noop));
        assert_eq!(encode_text(&Packet::Ping("probe")), "2probe");
        assert_eq!(encode_text(&Packet::Pong("probe")), "3probe");
        assert_eq!(encode_text(&Packet::Upgrade), "5");
        assert_eq!(encode_text(&Packet::Noop), "6");
        // The noop sent to a pending GET is a one-packet polling body.
        assert_eq!(encode_payload([Frame::Text("6")]), "6");
        assert_eq!(payload("6"), vec![Packet::Noop]);
    }

    // --- "Protocol": packet types, and close ----------------------------------

    #[test]
    fn spec_close() {
        assert_eq!(decode_text("1"), Ok(Packet::Close));
        assert_eq!(encode_text(&Packet::Close), "1");
        assert_eq!(payload("1"), vec![Packet::Close]);
    }

    #[test]
    fn packet_types_match_digits() {
        let all = [
            PacketType::Open,
            PacketType::Close,
            PacketType::Ping,
            PacketType::Pong,
            PacketType::Message,
            PacketType::Upgrade,
            PacketType::Noop,
        ];
        for (n, ty) in all.into_iter().enumerate() {
            assert_eq!(ty as usize, n);
            assert_eq!(ty.as_char().to_digit(10), Some(n as u32));
            assert_eq!(PacketType::from_char(ty.as_char()), Some(ty));
        }
        assert_eq!(PacketType::from_char('7'), None);
        assert_eq!(PacketType::from_char('b'), None);
        assert_eq!(Packet::Close.packet_type(), PacketType::Close);
        assert_eq!(Packet::Ping("").packet_type(), PacketType::Ping);
        assert_eq!(Packet::Pong("").packet_type(), PacketType::Pong);
        assert_eq!(
            Packet::Message(Message::Text("")).packet_type(),
            PacketType::Message
        );
        assert_eq!(bin(&[]).packet_type(), PacketType::Message);
        assert_eq!(Packet::Upgrade.packet_type(), PacketType::Upgrade);
        assert_eq!(Packet::Noop.packet_type(), PacketType::Noop);
        assert_eq!(
            Packet::Open(handshake("x", &[], 1, 1)).packet_type(),
            PacketType::Open
        );
    }

    // --- "Packet encoding", HTTP long-polling -------------------------------

    #[test]
    fn spec_polling_payload_text() {
        let body = "4hello\x1e2\x1e4world";
        assert_eq!(
            payload(body),
            vec![
                Packet::Message(Message::Text("hello")),
                Packet::Ping(""),
                Packet::Message(Message::Text("world")),
            ]
        );
        assert_eq!(
            encode_payload([
                Frame::Text("4hello"),
                Frame::Text("2"),
                Frame::Text("4world")
            ]),
            body
        );
    }

    #[test]
    fn spec_polling_payload_binary() {
        let body = "4hello\x1ebAQIDBA==";
        assert_eq!(
            payload(body),
            vec![Packet::Message(Message::Text("hello")), bin(&[1, 2, 3, 4])]
        );
        assert_eq!(
            encode_payload([Frame::Text("4hello"), Frame::Binary(&[1, 2, 3, 4])]),
            body
        );
        assert_eq!(encode_text(&bin(&[1, 2, 3, 4])), "bAQIDBA==");
        assert_eq!(decode_segment("bAQIDBA=="), Ok(bin(&[1, 2, 3, 4])));
    }

    // Socket.IO v5 spec, "Sample session", request n°5: a client POST body.
    #[test]
    fn spec_sample_session_post_body() {
        let body = "42[\"hello\"]\x1e42[\"world\"]";
        assert_eq!(
            payload(body),
            vec![
                Packet::Message(Message::Text("2[\"hello\"]")),
                Packet::Message(Message::Text("2[\"world\"]")),
            ]
        );
        let mut out = String::new();
        write_payload_frame(&mut out, Frame::Text("42[\"hello\"]"));
        assert_eq!(out, "42[\"hello\"]");
        write_payload_frame(&mut out, Frame::Text("42[\"world\"]"));
        assert_eq!(out, body);
    }

    // Socket.IO v5 spec, "Sample session", requests n°2 to n°4 (GET/POST bodies).
    #[test]
    fn spec_sample_session_polling_bodies() {
        assert_eq!(payload("40"), vec![Packet::Message(Message::Text("0"))]);
        assert_eq!(
            payload(r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#),
            vec![Packet::Message(Message::Text(
                r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#
            ))]
        );
        assert_eq!(
            payload(r#"42["hey","Jude"]"#),
            vec![Packet::Message(Message::Text(r#"2["hey","Jude"]"#))]
        );
    }

    #[test]
    fn binary_base64_padding_variants() {
        assert_eq!(decode_segment("b"), Ok(bin(&[])));
        assert_eq!(decode_segment("bAQ=="), Ok(bin(&[1])));
        assert_eq!(decode_segment("bAQ"), Ok(bin(&[1])));
        assert_eq!(decode_segment("bAQID"), Ok(bin(&[1, 2, 3])));
        assert_eq!(decode_segment("bAQIDBA"), Ok(bin(&[1, 2, 3, 4])));
        assert_eq!(decode_segment("b!!!!"), Err(DecodeError::BadBase64));
        assert_eq!(decode_segment("bA"), Err(DecodeError::BadBase64));
        // A text frame never carries base64.
        assert_eq!(decode_text("bAQIDBA=="), Err(DecodeError::UnknownType('b')));
    }

    #[test]
    fn polling_payload_errors() {
        let items: Vec<_> = decode_payload("").collect();
        assert_eq!(items, vec![Err(DecodeError::Empty)]);
        let items: Vec<_> = decode_payload("4a\x1e\x1e4b").collect();
        assert_eq!(
            items,
            vec![
                Ok(Packet::Message(Message::Text("a"))),
                Err(DecodeError::Empty),
                Ok(Packet::Message(Message::Text("b"))),
            ]
        );
        let items: Vec<_> = decode_payload("abc").collect();
        assert_eq!(items, vec![Err(DecodeError::UnknownType('a'))]);
    }

    #[test]
    fn payload_separator_only_between_frames() {
        assert_eq!(encode_payload(std::iter::empty()), "");
        assert_eq!(encode_payload([Frame::Binary(&[])]), "b");
        assert_eq!(
            encode_payload([Frame::Binary(&[0xff]), Frame::Text("3")]),
            "b/w==\x1e3"
        );
    }

    // --- "Packet encoding", WebSocket ---------------------------------------

    #[test]
    fn spec_websocket_frames() {
        assert_eq!(
            decode_text("4hello"),
            Ok(Packet::Message(Message::Text("hello")))
        );
        assert_eq!(
            encode_text(&Packet::Message(Message::Text("hello"))),
            "4hello"
        );
        // Binary payloads are sent as is.
        let frame = [1u8, 2, 3, 4];
        assert_eq!(
            decode_binary(&frame),
            Packet::Message(Message::Binary(Cow::Borrowed(&frame[..])))
        );
        assert!(matches!(
            decode_binary(&frame),
            Packet::Message(Message::Binary(Cow::Borrowed(_)))
        ));
        assert_eq!(decode_binary(&[]), bin(&[]));
    }

    // Engine.IO v3 protocol README examples, unchanged in v4.
    #[test]
    fn readme_message_examples() {
        assert_eq!(
            decode_text("4HelloWorld"),
            Ok(Packet::Message(Message::Text("HelloWorld")))
        );
    }

    // "History": UTF-8 is counted in bytes, and the separator frames packets.
    #[test]
    fn spec_utf8_text() {
        assert_eq!(decode_text("4€"), Ok(Packet::Message(Message::Text("€"))));
        assert_eq!(
            payload("4€\x1e4é"),
            vec![
                Packet::Message(Message::Text("€")),
                Packet::Message(Message::Text("é")),
            ]
        );
        assert_eq!(decode_text("€"), Err(DecodeError::UnknownType('€')));
    }

    // Socket.IO v5 spec, "Sample session", request n°6: the WebSocket frames.
    #[test]
    fn spec_sample_session_websocket_frames() {
        let frames = [
            ("2probe", Packet::Ping("probe")),
            ("3probe", Packet::Pong("probe")),
            ("5", Packet::Upgrade),
            (
                "42[\"hello\"]",
                Packet::Message(Message::Text("2[\"hello\"]")),
            ),
            (
                "42[\"world\"]",
                Packet::Message(Message::Text("2[\"world\"]")),
            ),
            ("40/admin,", Packet::Message(Message::Text("0/admin,"))),
            (
                r#"40/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#,
                Packet::Message(Message::Text(r#"0/admin,{"sid":"-G5j-67EZFp-q59rADQM"}"#)),
            ),
            (
                r#"42/admin,1["tellme"]"#,
                Packet::Message(Message::Text(r#"2/admin,1["tellme"]"#)),
            ),
            (
                r#"461-/admin,1[{"_placeholder":true,"num":0}]"#,
                Packet::Message(Message::Text(
                    r#"61-/admin,1[{"_placeholder":true,"num":0}]"#,
                )),
            ),
            ("2", Packet::Ping("")),
            ("3", Packet::Pong("")),
            ("1", Packet::Close),
        ];
        for (wire, packet) in frames {
            assert_eq!(decode_text(wire).as_ref(), Ok(&packet), "{wire}");
            assert_eq!(encode_text(&packet), wire);
        }
    }

    #[test]
    fn trailing_data_on_bodyless_packets_is_ignored() {
        assert_eq!(decode_text("1x"), Ok(Packet::Close));
        assert_eq!(decode_text("5x"), Ok(Packet::Upgrade));
        assert_eq!(decode_text("6x"), Ok(Packet::Noop));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode_text(""), Err(DecodeError::Empty));
        assert_eq!(decode_text("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(decode_text("abc"), Err(DecodeError::UnknownType('a')));
        assert_eq!(
            DecodeError::UnknownType('x').to_string(),
            "unknown Engine.IO packet type 'x'"
        );
    }

    // --- properties ----------------------------------------------------------

    /// An owned description of a packet, so that proptest can generate it.
    #[derive(Debug, Clone)]
    enum Owned {
        Open(Handshake),
        Close,
        Ping(String),
        Pong(String),
        Text(String),
        Binary(Vec<u8>),
        Upgrade,
        Noop,
    }

    impl Owned {
        fn packet(&self) -> Packet<'_> {
            match self {
                Owned::Open(h) => Packet::Open(h.clone()),
                Owned::Close => Packet::Close,
                Owned::Ping(s) => Packet::Ping(s),
                Owned::Pong(s) => Packet::Pong(s),
                Owned::Text(s) => Packet::Message(Message::Text(s)),
                Owned::Binary(b) => Packet::Message(Message::Binary(Cow::Borrowed(b))),
                Owned::Upgrade => Packet::Upgrade,
                Owned::Noop => Packet::Noop,
            }
        }
    }

    /// Packets whose text never contains the separator (the spec assumes it).
    fn arb_packet() -> impl Strategy<Value = Owned> {
        let text = "[^\u{1e}]{0,24}";
        let handshake = (
            ".{0,24}",
            prop::collection::vec(".{0,12}", 0..3),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(sid, upgrades, ping_interval, ping_timeout, max_payload)| Handshake {
                    sid,
                    upgrades,
                    ping_interval,
                    ping_timeout,
                    max_payload,
                },
            );
        prop_oneof![
            handshake.prop_map(Owned::Open),
            Just(Owned::Close),
            text.prop_map(Owned::Ping),
            text.prop_map(Owned::Pong),
            text.prop_map(Owned::Text),
            prop::collection::vec(any::<u8>(), 0..48).prop_map(Owned::Binary),
            Just(Owned::Upgrade),
            Just(Owned::Noop),
        ]
    }

    proptest! {
        #[test]
        fn decode_text_never_panics(s in ".*") {
            let _ = decode_text(&s);
        }

        #[test]
        fn decode_text_never_panics_near_grammar(s in "[0-6b][^\u{1e}]{0,16}") {
            let _ = decode_text(&s);
            let _ = decode_segment(&s);
        }

        #[test]
        fn decode_binary_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let packet = decode_binary(&bytes);
            prop_assert_eq!(packet, Packet::Message(Message::Binary(Cow::Borrowed(&bytes[..]))));
        }

        #[test]
        fn decode_payload_never_panics(s in ".*") {
            for item in decode_payload(&s) {
                let _ = item;
            }
        }

        #[test]
        fn decode_payload_never_panics_on_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..256)
        ) {
            let s = String::from_utf8_lossy(&bytes);
            let count = decode_payload(&s).count();
            prop_assert_eq!(count, s.split(SEPARATOR).count());
        }

        #[test]
        fn decode_payload_never_panics_near_grammar(
            s in "([0-6b][A-Za-z0-9+/=\\[\\]{}\",:]{0,12}\u{1e}?){0,6}"
        ) {
            for item in decode_payload(&s) {
                let _ = item;
            }
        }

        #[test]
        fn text_round_trip(owned in arb_packet()) {
            let packet = owned.packet();
            let text = encode_text(&packet);
            // Binary messages only have the polling ("b" + base64) text form.
            let decoded = decode_segment(&text);
            prop_assert_eq!(decoded, Ok(packet.clone()));
            if !matches!(owned, Owned::Binary(_)) {
                prop_assert_eq!(decode_text(&text), Ok(packet));
            }
        }

        #[test]
        fn payload_round_trip(owned in prop::collection::vec(arb_packet(), 1..8)) {
            let packets: Vec<Packet<'_>> = owned.iter().map(Owned::packet).collect();
            let texts: Vec<String> = packets.iter().map(encode_text).collect();
            let frames = packets.iter().zip(&texts).map(|(p, t)| match p {
                Packet::Message(Message::Binary(b)) => Frame::Binary(b),
                _ => Frame::Text(t),
            });
            let body = encode_payload(frames);
            let decoded: Result<Vec<_>, _> = decode_payload(&body).collect();
            prop_assert_eq!(decoded, Ok(packets));
        }
    }
}
