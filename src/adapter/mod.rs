//! Cluster adapters: how namespaces of several processes act as one.
//!
//! The adapter trait and the in-process [`crate::LocalAdapter`] live in the Socket.IO
//! layer (`socketio::adapter`); this layer holds the implementations that reach beyond
//! the process. Today that is Redis (cargo feature `redis`).

#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{
    OutagePolicy, RedisAdapter, RedisBroadcast, RedisConfig, RedisEmitter, RedisEmitterError,
};
