//! The ticker task: heartbeats on every namespace, and the recovery sessions of
//! live sockets written again before they expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::RedisConfig;
use super::node::Node;
use super::wire::kind;

/// Heartbeats, and the sessions of live sockets written again before they expire.
pub(super) async fn ticker(node: Arc<Node>) {
    let mut heartbeat = tokio::time::interval(
        node.config
            .heartbeat_interval
            .max(Duration::from_millis(100)),
    );
    let mut last_refresh = Instant::now();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {}
            _ = node.closing.cancelled() => return,
        }
        for nsp in node.namespace_names() {
            node.entry(&nsp, kind::HEARTBEAT, None);
        }
        let Some(core) = node.core() else {
            continue;
        };
        let window = core
            .all()
            .iter()
            .filter_map(|ns| ns.recovery_config().map(|c| c.max_disconnection_duration))
            .min();
        let Some(window) = window else {
            continue;
        };
        if last_refresh.elapsed() < refresh_interval(window, &node.config) {
            continue;
        }
        last_refresh = Instant::now();
        for ns in core.all() {
            for session in ns.session_records() {
                node.persist_session(ns.name(), session, false);
            }
        }
    }
}

/// How often the sessions of live sockets are written again.
pub(super) fn refresh_interval(window: Duration, config: &RedisConfig) -> Duration {
    (window / 4).max(config.heartbeat_interval)
}
