//! The wire protocols, sans-IO: Engine.IO v4 and Socket.IO v5 packets in and
//! out as strings and bytes, and the server's WebSocket data frames out.
//!
//! Nothing here touches a socket, a timer or an async runtime. Every function
//! takes what a transport received (a WebSocket frame, a long-polling body)
//! and returns decoded packets, or takes packets and returns the text or bytes
//! to send; the only state is the small [`socketio::Reassembler`] that pairs a
//! binary packet with the attachments that follow it. The transports in
//! `server` drive these functions from their event loops, and tests, fuzzers
//! and benchmarks can call them directly with literal input.
//!
//! The two layers nest: an Engine.IO `message` packet carries one Socket.IO
//! packet as its payload, so a WebSocket text frame `42["hello"]` is the
//! Engine.IO type `4` (message) around the Socket.IO packet `2["hello"]`
//! (an EVENT named `hello`).
//!
//! Decoders never panic, whatever the input: malformed packets come back as
//! typed errors ([`engineio::DecodeError`], [`socketio::DecodeError`]), after
//! which the server closes the connection, as the specifications require.
//!
//! ```
//! use swarmcast::protocol::engineio::{self, Message, Packet};
//! use swarmcast::protocol::socketio;
//!
//! // A long-polling POST body holding two Socket.IO events.
//! let body = "42[\"hello\"]\u{1e}42[\"world\"]";
//! let mut names = Vec::new();
//! for packet in engineio::decode_payload(body) {
//!     if let Packet::Message(Message::Text(text)) = packet? {
//!         let packet = socketio::decode(text, 10)?;
//!         names.extend(packet.event_name().map(str::to_owned));
//!     }
//! }
//! assert_eq!(names, ["hello", "world"]);
//!
//! // Encoding an event once: Engine.IO message type, then the Socket.IO packet.
//! let mut frame = String::from("4");
//! socketio::write_header(&mut frame, socketio::PacketKind::Event, 0, "/admin", None);
//! frame.push_str(r#"["tick",1]"#);
//! assert_eq!(frame, r#"42/admin,["tick",1]"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod engineio;
pub mod socketio;
pub mod websocket;
