//! The loader task: reads a keyed-state map (its version and entries, together)
//! from Redis into this node's copy, when a map is opened or a delta shows a gap.

use std::sync::Arc;

use redis::Value as RValue;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::commands::LOAD_SCRIPT;
use super::node::Node;
use super::reply::{items, text};

/// Loads state maps from Redis into this node's copies.
pub(super) async fn loader(node: Arc<Node>, mut rx: mpsc::UnboundedReceiver<(String, String)>) {
    loop {
        let next = tokio::select! {
            n = rx.recv() => n,
            _ = node.closing.cancelled() => return,
        };
        let Some((nsp, map)) = next else {
            return;
        };
        load_map(&node, &nsp, &map).await;
    }
}

pub(super) async fn load_map(node: &Node, nsp: &str, map: &str) {
    let (Some(mut conn), Some(ns)) = (node.cmd_conn(), node.namespace(nsp)) else {
        return;
    };
    let reply: Result<RValue, _> = redis::cmd("EVAL")
        .arg(LOAD_SCRIPT)
        .arg(2)
        .arg(node.config.state_entries_key(nsp, map))
        .arg(node.config.state_maps_key(nsp))
        .arg(map)
        .query_async(&mut conn)
        .await;
    let Ok(reply) = reply else {
        return;
    };
    let parts = items(&reply);
    let version = parts
        .first()
        .and_then(|v| text(v))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut entries = Map::new();
    if let Some(flat) = parts.get(1) {
        for pair in items(flat).chunks(2) {
            if let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) {
                let value = text(v)
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or(Value::Null);
                entries.insert(k, value);
            }
        }
    }
    ns.load_state(map, version, entries);
}
