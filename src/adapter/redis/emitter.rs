//! Publishing into a cluster without a server: [`RedisEmitter`].
//!
//! It appends to the broadcast log exactly what a node appends for its own broadcasts
//! (uid `emitter`, as `@socket.io/redis-emitter`), so every node (swarmcast, or Node
//! with `@socket.io/redis-streams-adapter`) delivers it, with a recovery offset.

use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;

use super::StateChange;
use super::{kind, state_command, wire, xadd_command, RedisConfig};
use crate::socketio::adapter::ClusterBroadcast;
use crate::socketio::namespace::Outgoing;
use crate::socketio::packet::{self, Payload, WriteArgs};
use crate::socketio::rooms::{target_builders, Room, Target};

/// Why a [`RedisEmitter`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisEmitterError {
    /// Redis refused, or could not be reached.
    #[error("redis: {0}")]
    Redis(String),
    /// The data could not be encoded, or the event name is reserved.
    #[error("{0}")]
    Encode(String),
}

impl From<redis::RedisError> for RedisEmitterError {
    fn from(e: redis::RedisError) -> Self {
        RedisEmitterError::Redis(e.to_string())
    }
}

/// Emits into a swarmcast (or socket.io) cluster from any process, without a server:
/// workers, cron jobs, agents.
///
/// ```no_run
/// # async fn run() -> Result<(), swarmcast::RedisEmitterError> {
/// let emitter = swarmcast::RedisEmitter::connect("redis://127.0.0.1:6379").await?;
/// emitter.emit("tick", &serde_json::json!({"seq": 1})).await?;
/// emitter.of("/admin").to("ops").except("muted").emit("alert", &"disk full").await?;
/// emitter.set_state("/", "agents", "a1", &serde_json::json!({"status": "idle"})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisEmitter {
    conn: ConnectionManager,
    config: RedisConfig,
}

impl std::fmt::Debug for RedisEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEmitter")
            .field("stream", &self.config.stream_name)
            .finish_non_exhaustive()
    }
}

impl RedisEmitter {
    /// Connect with the default stream and prefixes.
    pub async fn connect(url: &str) -> Result<Self, RedisEmitterError> {
        Self::with_config(RedisConfig::new(url)).await
    }

    /// Connect with a configuration (the same as the nodes' to reach them).
    pub async fn with_config(config: RedisConfig) -> Result<Self, RedisEmitterError> {
        let client = config.client()?;
        let conn = client
            .get_connection_manager_with_config(config.manager_config())
            .await?;
        Ok(Self { conn, config })
    }

    /// A broadcast on namespace `nsp`.
    pub fn of(&self, nsp: &str) -> RedisBroadcast<'_> {
        let nsp = if nsp.starts_with('/') {
            nsp.to_string()
        } else {
            format!("/{nsp}")
        };
        RedisBroadcast {
            emitter: self,
            nsp,
            target: Target::all(),
            volatile: false,
        }
    }

    /// A broadcast on `/` to a room (or a socket id).
    pub fn to(&self, room: impl Into<Room>) -> RedisBroadcast<'_> {
        self.of("/").to(room)
    }

    /// Emit to every client of `/`; returns the log id of the entry.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<String, RedisEmitterError> {
        self.of("/").emit(event, data).await
    }

    /// Set a key of keyed state map `map` of namespace `nsp`: stored in Redis, and the
    /// delta reaches every node's subscribers.
    pub async fn set_state<T: Serialize + ?Sized>(
        &self,
        nsp: &str,
        map: &str,
        key: &str,
        value: &T,
    ) -> Result<(), RedisEmitterError> {
        let value =
            serde_json::to_value(value).map_err(|e| RedisEmitterError::Encode(e.to_string()))?;
        self.state(nsp, map, key, Some(value)).await
    }

    /// Delete a key of a keyed state map.
    pub async fn delete_state(
        &self,
        nsp: &str,
        map: &str,
        key: &str,
    ) -> Result<(), RedisEmitterError> {
        self.state(nsp, map, key, None).await
    }

    async fn state(
        &self,
        nsp: &str,
        map: &str,
        key: &str,
        value: Option<Value>,
    ) -> Result<(), RedisEmitterError> {
        let change = StateChange {
            map: map.to_string(),
            key: key.to_string(),
            value,
        };
        let cmd = state_command(&self.config, wire::EMITTER_UID, nsp, &change);
        let mut conn = self.conn.clone();
        cmd.query_async::<redis::Value>(&mut conn).await?;
        Ok(())
    }

    async fn publish(
        &self,
        nsp: &str,
        msg: &ClusterBroadcast,
    ) -> Result<String, RedisEmitterError> {
        let data = wire::broadcast_data(nsp, msg);
        let cmd = xadd_command(
            &self.config,
            wire::EMITTER_UID,
            nsp,
            kind::BROADCAST,
            Some(&data),
            None,
            None,
        );
        let mut conn = self.conn.clone();
        Ok(cmd.query_async::<String>(&mut conn).await?)
    }
}

/// A broadcast being built by a [`RedisEmitter`].
#[derive(Debug)]
pub struct RedisBroadcast<'a> {
    emitter: &'a RedisEmitter,
    nsp: String,
    target: Target,
    volatile: bool,
}

impl RedisBroadcast<'_> {
    target_builders!();

    /// Emit `event` with one argument; returns the log id of the entry.
    pub async fn emit<T: Serialize + ?Sized>(
        self,
        event: &str,
        data: &T,
    ) -> Result<String, RedisEmitterError> {
        let msg = self.message(event, &packet::write_one(data), &[])?;
        self.emitter.publish(&self.nsp, &msg).await
    }

    /// Emit `event` with any arguments and binary attachments.
    pub async fn emit_payload(
        self,
        event: &str,
        payload: &Payload,
    ) -> Result<String, RedisEmitterError> {
        let msg = self.message(
            event,
            &packet::write_args(&payload.args),
            &payload.attachments,
        )?;
        self.emitter.publish(&self.nsp, &msg).await
    }

    /// The log entry of an event, serialised as a node serialises its own broadcasts.
    fn message(
        &self,
        event: &str,
        args: WriteArgs<'_>,
        attachments: &[bytes::Bytes],
    ) -> Result<ClusterBroadcast, RedisEmitterError> {
        let encode = |e: &dyn std::fmt::Display| RedisEmitterError::Encode(e.to_string());
        packet::check_event_name(event).map_err(|e| encode(&e))?;
        let out = Outgoing::event(event, args, attachments, &self.target, self.volatile, false);
        ClusterBroadcast::from_outgoing(&out).map_err(|e| encode(&e))
    }
}
