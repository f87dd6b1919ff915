//! `swarmcast.RedisEmitter`: publish into a cluster of swarmcast nodes (or socket.io
//! servers with `@socket.io/redis-streams-adapter`) through Redis, without a server.
//! A thin layer over the core's [`swarmcast::RedisEmitter`] (crate feature `redis`, on
//! in the wheel): it owns a one-thread runtime and releases the GIL while Redis answers.

use std::time::Duration;

use pyo3::prelude::*;
use swarmcast::{RedisConfig, RedisEmitter, RedisEmitterError};

use crate::args::Targets;
use crate::convert;
use crate::errors::EmitError;

fn redis_error(e: RedisEmitterError) -> PyErr {
    EmitError::new_err(e.to_string())
}

/// How long a call waits for Redis.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes events and keyed-state changes into a cluster through Redis.
#[pyclass(frozen, module = "swarmcast._native", name = "RedisEmitter")]
pub struct PyRedisEmitter {
    runtime: tokio::runtime::Runtime,
    emitter: RedisEmitter,
}

impl PyRedisEmitter {
    fn block<T>(
        &self,
        py: Python<'_>,
        fut: impl std::future::Future<Output = Result<T, RedisEmitterError>> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        py.detach(|| {
            self.runtime
                .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
        })
        .map_err(|_| EmitError::new_err("redis did not answer in time"))?
        .map_err(redis_error)
    }
}

#[pymethods]
impl PyRedisEmitter {
    /// Connect to Redis (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS).
    #[new]
    #[pyo3(signature = (url, stream = "socket.io"))]
    fn new(py: Python<'_>, url: &str, stream: &str) -> PyResult<Self> {
        let mut config = RedisConfig::new(url);
        config.stream_name = stream.to_string();
        py.detach(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("swarmcast-redis")
                .enable_all()
                .build()
                .map_err(|e| EmitError::new_err(format!("cannot start a runtime: {e}")))?;
            let emitter = runtime
                .block_on(async {
                    tokio::time::timeout(TIMEOUT, RedisEmitter::with_config(config)).await
                })
                .map_err(|_| EmitError::new_err("redis did not answer in time"))?
                .map_err(redis_error)?;
            Ok(Self { runtime, emitter })
        })
    }

    /// Emit `event` to every client of `namespace` on every node, or to rooms/sids `to`,
    /// minus `skip_sid`. `data`: `None` sends no argument, a tuple several, bytes become
    /// binary attachments. Returns the id of the entry in the Redis stream.
    #[pyo3(signature = (event, data = None, to = None, skip_sid = None, namespace = None, volatile = false))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        py: Python<'_>,
        event: &str,
        data: Option<Bound<'_, PyAny>>,
        to: Option<Bound<'_, PyAny>>,
        skip_sid: Option<Bound<'_, PyAny>>,
        namespace: Option<&str>,
        volatile: bool,
    ) -> PyResult<String> {
        let payload = convert::to_payload(data.as_ref(), "data")?;
        let Targets { to, except } = Targets::parse(to.as_ref(), None, skip_sid.as_ref())?;
        let mut op = self.emitter.of(namespace.unwrap_or("/"));
        for room in to {
            op = op.to(room);
        }
        for room in except {
            op = op.except(room);
        }
        if volatile {
            op = op.volatile();
        }
        self.block(py, op.emit_payload(event, &payload))
    }

    /// Set `key` of keyed state map `name` (of `namespace`) on every node.
    #[pyo3(signature = (name, key, value, namespace = None))]
    fn set_state(
        &self,
        py: Python<'_>,
        name: &str,
        key: &str,
        value: &Bound<'_, PyAny>,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        let value = convert::to_value(value, "value")?;
        let ns = namespace.unwrap_or("/");
        self.block(py, self.emitter.set_state(ns, name, key, &value))
    }

    /// Delete `key` of keyed state map `name` on every node.
    #[pyo3(signature = (name, key, namespace = None))]
    fn delete_state(
        &self,
        py: Python<'_>,
        name: &str,
        key: &str,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        let ns = namespace.unwrap_or("/");
        self.block(py, self.emitter.delete_state(ns, name, key))
    }
}
