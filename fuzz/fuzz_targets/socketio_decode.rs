//! Fuzzes the Socket.IO packet decoder and the binary attachment reassembler.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use swarmcast::protocol::socketio::{self, Reassembler};

/// The reference parser's default limit.
const MAX_ATTACHMENTS: usize = 10;

/// serde_json does not promise exact float round trips by default, so data
/// holding floats is compared by shape only.
fn has_float(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Number(n) if n.is_f64() => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(packet) = socketio::decode(text, MAX_ATTACHMENTS) else {
        return;
    };
    assert!(packet.attachments <= MAX_ATTACHMENTS);
    assert_eq!(packet.attachments == 0, !packet.kind.is_binary());

    // What decodes re-encodes to text that decodes to the same packet.
    let encoded = socketio::encode(&packet);
    let again = match socketio::decode(&encoded, MAX_ATTACHMENTS) {
        Ok(again) => again,
        Err(e) => panic!("{text:?} re-encoded as {encoded:?}, which fails: {e}"),
    };
    assert_eq!(again.kind, packet.kind);
    assert_eq!(again.namespace, packet.namespace);
    assert_eq!(again.id, packet.id);
    assert_eq!(again.attachments, packet.attachments);
    if !packet.data.as_ref().is_some_and(has_float) {
        assert_eq!(again.data, packet.data);
    }

    // The reassembler completes it after exactly its attachment count.
    let mut reassembler = Reassembler::default();
    let attachments = packet.attachments;
    let first = reassembler.push_packet(packet);
    if attachments == 0 {
        assert!(matches!(first, Ok(Some(_))));
    } else {
        assert!(matches!(first, Ok(None)));
        for i in 1..=attachments {
            let chunk = bytes::Bytes::from(i.to_le_bytes().to_vec());
            match reassembler.push_attachment(chunk) {
                Ok(None) => assert!(i < attachments),
                Ok(Some(complete)) => {
                    assert_eq!(i, attachments);
                    assert_eq!(complete.attachments.len(), attachments);
                }
                Err(e) => panic!("attachment {i} of {attachments} rejected: {e}"),
            }
        }
    }
    assert!(!reassembler.is_pending());
});
