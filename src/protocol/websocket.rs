//! The server's side of RFC 6455 framing, for the one thing the server does in bulk:
//! writing many data frames at once. A server frame is never masked (RFC 6455, 5.1), so
//! it is a 2-10 byte header and the payload as is. Reading, handshakes and control
//! frames stay with tungstenite; the writer appends a batch of queued frames to one
//! buffer here and writes it in one call, rather than feeding them one by one through
//! tungstenite's sink (its per-frame bookkeeping was ~15% of the server's CPU under
//! saturation).

/// The opcode of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A text frame (UTF-8 payload): every Engine.IO packet but binary attachments.
    Text = 0x1,
    /// A binary frame.
    Binary = 0x2,
}

/// The largest header: 2 bytes, then a 64-bit length.
pub const MAX_HEADER_LEN: usize = 10;

/// Append one complete, unmasked, final data frame carrying `payload` to `out`.
///
/// ```
/// use swarmcast::protocol::websocket::{write_frame, Opcode};
///
/// let mut out = Vec::new();
/// write_frame(&mut out, Opcode::Text, b"42[\"tick\"]");
/// assert_eq!(&out[..2], &[0x81, 10]);
/// assert_eq!(&out[2..], b"42[\"tick\"]");
/// ```
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    write_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Append the header of a final, unmasked data frame whose payload is `len` bytes: the
/// payload follows it as is (written separately when it is large, to avoid a copy).
pub fn write_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    out.push(0x80 | opcode as u8); // FIN: one frame per message
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// What tungstenite writes for the same message.
    fn tungstenite(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let frame = match opcode {
            Opcode::Text => Frame::message(payload.to_vec(), tungstenite_op(true), true),
            Opcode::Binary => Frame::message(payload.to_vec(), tungstenite_op(false), true),
        };
        let mut out = Vec::new();
        frame.format(&mut out).expect("format");
        out
    }

    fn tungstenite_op(
        text: bool,
    ) -> tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        OpCode::Data(if text { Data::Text } else { Data::Binary })
    }

    #[test]
    fn frames_are_byte_for_byte_what_tungstenite_writes_at_every_length_boundary() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for opcode in [Opcode::Text, Opcode::Binary] {
                let mut ours = Vec::new();
                write_frame(&mut ours, opcode, &payload);
                assert_eq!(
                    ours,
                    tungstenite(opcode, &payload),
                    "{opcode:?}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn a_header_then_its_payload_is_the_frame() {
        let payload = vec![7u8; 70_000];
        let mut split = Vec::new();
        write_header(&mut split, Opcode::Binary, payload.len());
        assert_eq!(split.len(), MAX_HEADER_LEN);
        split.extend_from_slice(&payload);
        let mut whole = Vec::new();
        write_frame(&mut whole, Opcode::Binary, &payload);
        assert_eq!(split, whole);
    }

    #[test]
    fn frames_append_to_what_is_there() {
        let mut out = Vec::new();
        write_frame(&mut out, Opcode::Text, b"2");
        write_frame(&mut out, Opcode::Binary, &[1, 2, 3]);
        assert_eq!(out, [0x81, 1, b'2', 0x82, 3, 1, 2, 3]);
    }
}
