//! The ticker task: heartbeats on every namespace, the recovery sessions of live
//! sockets written again before they expire, and, every second, the gauges of the
//! stream (reader lag, replay window held, peers).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::RedisConfig;
use super::node::Node;
use super::reply::stream_info;
use super::wire::kind;
use crate::metrics::ClusterGauge;

/// Heartbeats, sessions of live sockets written again before they expire, gauges.
pub(super) async fn ticker(node: Arc<Node>) {
    let heartbeat = node
        .config
        .heartbeat_interval
        .max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(heartbeat.min(Duration::from_secs(1)));
    let mut last_refresh = Instant::now();
    let mut last_heartbeat: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = node.closing.cancelled() => return,
        }
        monitor(&node).await;
        if last_heartbeat.is_some_and(|t| t.elapsed() + Duration::from_millis(50) < heartbeat) {
            continue;
        }
        last_heartbeat = Some(Instant::now());
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

/// The stream's gauges: how far behind the reader is, what the stream holds, the
/// peers seen. A failed check tells the publisher to test its connection.
async fn monitor(node: &Node) {
    let Some(stats) = node.stats() else {
        return;
    };
    let peers_window = (node.config.heartbeat_interval * 3).max(Duration::from_secs(15));
    stats.cluster_gauge(ClusterGauge::Peers, node.status.peers(peers_window) as u64);
    let Some(mut conn) = node.cmd_conn() else {
        return;
    };
    let info = match stream_info(&mut conn, &node.config.stream_name).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the stream's state");
            node.reconnect.notify_one();
            return;
        }
    };
    let position = *node.status.position.lock();
    let lag_ms = if info.last_id > position.id {
        info.last_id.ms.saturating_sub(position.id.ms)
    } else {
        0
    };
    node.status.lag_ms.store(lag_ms, Ordering::Relaxed);
    stats.cluster_gauge(ClusterGauge::StreamLagMs, lag_ms);
    let lag_entries = match info.entries_added {
        Some(added) if info.last_id > position.id => {
            let reached = position.base + position.read as i64;
            u64::try_from(i64::try_from(added).unwrap_or(i64::MAX) - reached).unwrap_or(0)
        }
        _ => 0,
    };
    stats.cluster_gauge(ClusterGauge::StreamLagEntries, lag_entries);
    stats.cluster_gauge(ClusterGauge::ReplayWindowEntries, info.length);
    let window_ms = info
        .first_id
        .map(|first| info.last_id.ms.saturating_sub(first.ms))
        .unwrap_or(0);
    stats.cluster_gauge(ClusterGauge::ReplayWindowMs, window_ms);
}

/// How often the sessions of live sockets are written again.
pub(super) fn refresh_interval(window: Duration, config: &RedisConfig) -> Duration {
    (window / 4).max(config.heartbeat_interval)
}
