//! `swarmcast.StateMap`: the core keyed live state ([`swarmcast::StateMap`]) as a
//! mapping-like Python object. Subscribers get a snapshot, then one delta per change.
//!
//! With `emit_in_background`, a set goes through the server's handoff like an emit
//! (in order with the emits made before it); reads and deletes first wait for what
//! is handed off, so that a thread reads its own writes.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use swarmcast::{Host, PreparedEmit, StateMap, WeakHost};

use crate::convert;
use crate::emit;
use crate::errors;

/// A keyed state map: `state["a1"] = {...}` streams the change to every subscriber.
#[pyclass(frozen, module = "swarmcast._native", name = "StateMap")]
pub struct PyStateMap {
    map: StateMap,
    /// The server's host, for its handoff (weak: a map kept by the application does not
    /// keep a dropped server's threads).
    host: WeakHost,
}

impl PyStateMap {
    pub(crate) fn new(map: StateMap, host: &Host) -> Self {
        Self {
            map,
            host: host.downgrade(),
        }
    }

    /// Wait (with the GIL released by the caller) until the emits and state changes
    /// handed off so far are done: one atomic read when none is pending.
    fn settled(&self) -> &StateMap {
        if let Some(host) = self.host.upgrade() {
            host.wait_for_handed_off();
        }
        &self.map
    }
}

#[pymethods]
impl PyStateMap {
    /// The map's name (what clients subscribe to).
    #[getter]
    fn name(&self) -> String {
        self.map.name().to_string()
    }

    /// Number of changes so far.
    #[getter]
    fn version(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.settled().version())
    }

    /// Set `key` to a JSON value (no bytes) and stream the change. With
    /// `emit_in_background`, handed off like an emit.
    fn set(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = convert::to_value(value, "value")?;
        if let Some(host) = self.host.upgrade() {
            if let Some(handoff) = host.handoff() {
                let change =
                    PreparedEmit::set_state(&self.map, key, value).map_err(errors::emit_error)?;
                return emit::send_prepared(py, handoff, change, true).map(|_| ());
            }
        }
        py.detach(|| self.map.set_value(key, value))
            .map_err(errors::emit_error)
    }

    /// Remove `key`; returns whether it was there.
    fn delete(&self, py: Python<'_>, key: &str) -> bool {
        py.detach(|| self.settled().delete(key))
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match py.detach(|| self.settled().get(key)) {
            Some(v) => Ok(convert::to_python(py, &v, &[])?.unbind()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// A copy of the whole map as a dict.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let entries = py.detach(|| self.settled().snapshot());
        let d = PyDict::new(py);
        for (k, v) in &entries {
            d.set_item(k, convert::to_python(py, v, &[])?)?;
        }
        Ok(d)
    }

    /// The keys, in no particular order.
    fn keys(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.settled().snapshot().keys().cloned().collect())
    }

    fn __getitem__(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        match py.detach(|| self.settled().get(key)) {
            Some(v) => Ok(convert::to_python(py, &v, &[])?.unbind()),
            None => Err(PyKeyError::new_err(key.to_string())),
        }
    }

    fn __setitem__(&self, py: Python<'_>, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set(py, key, value)
    }

    fn __delitem__(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        if self.delete(py, key) {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.to_string()))
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &str) -> bool {
        py.detach(|| self.settled().get(key).is_some())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        py.detach(|| self.settled().len())
    }

    fn __repr__(&self) -> String {
        format!(
            "<swarmcast.StateMap '{}' ({} keys)>",
            self.map.name(),
            self.map.len()
        )
    }
}
