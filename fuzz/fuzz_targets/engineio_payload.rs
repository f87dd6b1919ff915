//! Fuzzes the Engine.IO decoders: long-polling bodies, text frames and binary frames.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcast::protocol::engineio::{self, Frame, Message, Packet};

fuzz_target!(|data: &[u8]| {
    // A WebSocket binary frame is always one binary message, borrowed as is.
    match engineio::decode_binary(data) {
        Packet::Message(Message::Binary(bytes)) => assert_eq!(&*bytes, data),
        other => panic!("binary frame decoded as {other:?}"),
    }

    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };

    // The same text as one WebSocket text frame.
    if let Ok(packet) = engineio::decode_text(body) {
        let text = engineio::encode_text(&packet);
        assert_eq!(
            engineio::decode_text(&text).as_ref(),
            Ok(&packet),
            "{text:?}"
        );
    }

    // As a long-polling body: each decoded packet survives a round trip.
    let mut packets = Vec::new();
    let mut all_ok = true;
    for item in engineio::decode_payload(body) {
        match item {
            Ok(packet) => {
                let text = engineio::encode_text(&packet);
                assert_eq!(
                    engineio::decode_segment(&text).as_ref(),
                    Ok(&packet),
                    "{text:?}"
                );
                packets.push(packet);
            }
            Err(_) => all_ok = false,
        }
    }

    // A body whose segments all decode re-encodes to a body with the same packets.
    if all_ok {
        let texts: Vec<String> = packets.iter().map(engineio::encode_text).collect();
        let frames = packets
            .iter()
            .zip(&texts)
            .map(|(packet, text)| match packet {
                Packet::Message(Message::Binary(bytes)) => Frame::Binary(bytes),
                _ => Frame::Text(text),
            });
        let again = engineio::encode_payload(frames);
        let decoded: Result<Vec<_>, _> = engineio::decode_payload(&again).collect();
        assert_eq!(decoded.as_ref(), Ok(&packets), "{again:?}");
    }
});
