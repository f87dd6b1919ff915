//! Criterion micro-benchmarks of the sans-IO codecs: Engine.IO frames and long-polling
//! payloads (text and base64 binary), Socket.IO events, binary events with their
//! attachments. Run with `cargo bench --bench protocol`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use swarmcast::protocol::{engineio, socketio};

const TICK: &str = r#"42["tick",{"seq":123456,"ts":1700000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]"#;

fn engine_io(c: &mut Criterion) {
    let mut g = c.benchmark_group("engineio");
    g.bench_function("decode_text", |b| {
        b.iter(|| engineio::decode_text(black_box(TICK)))
    });
    let body = vec![TICK; 16].join("\u{1e}");
    g.throughput(Throughput::Elements(16));
    g.bench_function("decode_payload_16", |b| {
        b.iter(|| engineio::decode_payload(black_box(&body)).count())
    });
    g.bench_function("encode_payload_16", |b| {
        b.iter(|| engineio::encode_payload((0..16).map(|_| engineio::Frame::Text(black_box(TICK)))))
    });
    g.throughput(Throughput::Bytes(4096));
    let blob = vec![0xa5u8; 4096];
    g.bench_function("encode_payload_binary_4k", |b| {
        b.iter(|| engineio::encode_payload([engineio::Frame::Binary(black_box(&blob))]))
    });
    let encoded = engineio::encode_payload([engineio::Frame::Binary(&blob)]);
    g.bench_function("decode_payload_binary_4k", |b| {
        b.iter(|| engineio::decode_payload(black_box(&encoded)).count())
    });
    g.finish();
}

fn socket_io(c: &mut Criterion) {
    let mut g = c.benchmark_group("socketio");
    let text = &TICK[1..];
    g.bench_function("decode_event", |b| {
        b.iter(|| socketio::decode(black_box(text), 10))
    });
    let packet = socketio::Packet::event(
        "/",
        json!(["tick", {"seq": 123456, "ts": 1_700_000_000_000_000u64, "pad": "x".repeat(140)}]),
        None,
    );
    g.bench_function("encode_event", |b| {
        b.iter(|| socketio::encode(black_box(&packet)))
    });
    let ack = socketio::Packet::ack("/chat", json!([{"ok": true}]), 42);
    g.bench_function("encode_ack_namespace", |b| {
        b.iter(|| socketio::encode(black_box(&ack)))
    });
    // A binary event: the header with two placeholders, then two 1 KiB attachments.
    let header = r#"52-["upload",{"name":"a.bin"},{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    let attachment = Bytes::from(vec![7u8; 1024]);
    g.bench_function("decode_binary_event_2x1k", |b| {
        b.iter(|| {
            let mut r = socketio::Reassembler::default();
            let packet = socketio::decode(black_box(header), 10).ok()?;
            r.push_packet(packet).ok()?;
            r.push_attachment(attachment.clone()).ok()?;
            r.push_attachment(attachment.clone()).ok()?
        })
    });
    g.finish();
}

criterion_group!(benches, engine_io, socket_io);
criterion_main!(benches);
