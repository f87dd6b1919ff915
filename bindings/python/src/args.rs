//! Python arguments shared by several methods: durations, counts, names and emit
//! targets.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    if !value.is_finite() || value <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, not {value}"
        )));
    }
    Duration::try_from_secs_f64(value).map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// A duration in seconds where zero is meaningful (for example "never wait").
pub(crate) fn seconds_or_zero(name: &str, value: f64) -> PyResult<Duration> {
    if value == 0.0 {
        return Ok(Duration::ZERO);
    }
    seconds(name, value)
}

pub(crate) fn positive(name: &str, value: usize) -> PyResult<usize> {
    if value == 0 {
        return Err(PyValueError::new_err(format!("{name} must be > 0")));
    }
    Ok(value)
}

/// `str`, or a list/tuple of `str` (rooms, sids, origins).
pub(crate) fn names(arg: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<String>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    if arg.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = arg.cast::<PyString>() {
        return Ok(vec![s.to_str()?.to_owned()]);
    }
    if arg.is_instance_of::<PyList>()
        || arg.is_instance_of::<PyTuple>()
        || arg.hasattr("__iter__")?
    {
        let mut out = Vec::new();
        for item in arg.try_iter()? {
            let item = item?;
            match item.cast::<PyString>() {
                Ok(s) => out.push(s.to_str()?.to_owned()),
                Err(_) => {
                    return Err(PyTypeError::new_err(format!(
                        "{what}: expected str items, got {}",
                        item.get_type().name()?
                    )))
                }
            }
        }
        return Ok(out);
    }
    Err(PyTypeError::new_err(format!(
        "{what}: expected a str or a list of str, got {}",
        arg.get_type().name()?
    )))
}

/// Where an emit goes: the rooms (or sids) it targets, none for everyone, and those it
/// leaves out.
pub(crate) struct Targets {
    pub to: Vec<String>,
    pub except: Vec<String>,
}

impl Targets {
    /// `to` (a str or a list of str; `room` is its alias, used when `to` is None) and
    /// `skip_sid`, as python-socketio takes them.
    pub(crate) fn parse(
        to: Option<&Bound<'_, PyAny>>,
        room: Option<&Bound<'_, PyAny>>,
        skip_sid: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let to = match to {
            Some(t) if !t.is_none() => Some(t),
            _ => room,
        };
        Ok(Self {
            to: names(to, "to")?,
            except: names(skip_sid, "skip_sid")?,
        })
    }
}

/// `transports`: which of long-polling and WebSocket are allowed (both when None).
pub(crate) fn transports(value: Option<&Bound<'_, PyAny>>) -> PyResult<(bool, bool)> {
    let Some(value) = value else {
        return Ok((true, true));
    };
    let names = names(Some(value), "transports")?;
    if let Some(name) = names.iter().find(|n| *n != "polling" && *n != "websocket") {
        return Err(PyValueError::new_err(format!(
            "unknown transport '{name}' (expected 'polling' or 'websocket')"
        )));
    }
    Ok((
        names.iter().any(|n| n == "polling"),
        names.iter().any(|n| n == "websocket"),
    ))
}

/// `slow_consumer`: "disconnect" or "report".
pub(crate) fn slow_consumer(name: &str) -> PyResult<swarmcast::SlowConsumerPolicy> {
    match name {
        "disconnect" => Ok(swarmcast::SlowConsumerPolicy::Disconnect),
        "report" => Ok(swarmcast::SlowConsumerPolicy::Report),
        other => Err(PyValueError::new_err(format!(
            "slow_consumer must be 'disconnect' or 'report', not '{other}'"
        ))),
    }
}

/// `rate_limit_policy`: "drop" or "disconnect".
pub(crate) fn rate_limit_policy(name: &str) -> PyResult<swarmcast::RateLimitPolicy> {
    swarmcast::RateLimitPolicy::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "rate_limit_policy must be 'drop' or 'disconnect', not '{name}'"
        ))
    })
}

/// `message_queue="redis://..."`: the core's Redis adapter (wire-compatible with
/// `@socket.io/redis-streams-adapter`), the stream named `channel`.
#[cfg(feature = "redis")]
pub(crate) fn join_cluster(
    server: &mut swarmcast::Server,
    url: &str,
    channel: &str,
) -> PyResult<()> {
    let mut config = swarmcast::RedisConfig::new(url);
    config.stream_name = channel.to_string();
    let adapter = swarmcast::RedisAdapter::new(config)
        .map_err(|e| PyValueError::new_err(format!("message_queue: {e}")))?;
    server
        .set_adapter(adapter)
        .map_err(|e| PyValueError::new_err(format!("message_queue: {e}")))?;
    Ok(())
}

#[cfg(not(feature = "redis"))]
pub(crate) fn join_cluster(_: &mut swarmcast::Server, _: &str, _: &str) -> PyResult<()> {
    Err(PyValueError::new_err(
        "message_queue: this build of swarmcast has no Redis support (feature `redis`)",
    ))
}

/// The connection and rate limits of `Server(...)`, as given.
pub(crate) struct Limits<'a> {
    pub max_connections: usize,
    pub listen_backlog: u32,
    pub request_timeout: f64,
    pub write_timeout: f64,
    pub max_attachment_bytes: usize,
    pub max_attachment_bytes_total: usize,
    pub rate_limit_events: u32,
    pub rate_limit_bytes: u64,
    pub rate_limit_policy: &'a str,
}

impl Limits<'_> {
    /// The core's limits, each argument checked.
    pub(crate) fn check(self) -> PyResult<swarmcast::Limits> {
        Ok(swarmcast::Limits {
            max_connections: positive("max_connections", self.max_connections)?,
            listen_backlog: positive("listen_backlog", self.listen_backlog as usize)? as u32,
            request_timeout: seconds("request_timeout", self.request_timeout)?,
            write_timeout: seconds("write_timeout", self.write_timeout)?,
            max_attachment_bytes: positive("max_attachment_bytes", self.max_attachment_bytes)?,
            max_attachment_bytes_total: positive(
                "max_attachment_bytes_total",
                self.max_attachment_bytes_total,
            )?,
            rate_limit: swarmcast::RateLimit {
                events_per_second: self.rate_limit_events,
                bytes_per_second: self.rate_limit_bytes,
                policy: rate_limit_policy(self.rate_limit_policy)?,
            },
        })
    }
}
