//! Python values <-> `serde_json::Value` and the core's [`Payload`].
//!
//! Python to Rust runs with the GIL held and before anything is sent, so a bad value raises
//! and nothing leaves the process. Accepted: `dict` (str keys), `list`, `tuple`, `str`,
//! `int` (i64/u64 range), `float` (finite), `bool`, `None`, and `bytes`/`bytearray`/
//! `memoryview`, which become binary attachments (the core's placeholders). The error
//! names the type and the path of the offending value, e.g.
//! `data["agents"][3]["x"]: object of type 'set' is not JSON serialisable`.

use std::cell::RefCell;
use std::fmt::Write as _;

use bytes::Bytes;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use swarmcast::protocol::socketio::placeholder_index;
use swarmcast::Payload;

/// Deeper nesting is refused (a self-referencing list would otherwise never end). Socket.IO
/// clients' JSON parsers stop at about this depth too.
const MAX_DEPTH: usize = 128;

/// One step from a container to an element, for error messages.
enum PathStep {
    Key(String),
    Index(usize),
}

/// What went wrong, before the path is known.
enum FailKind {
    Type(String),
    Key(String),
    Overflow,
    NotFinite(f64),
    TooDeep,
    Python(PyErr),
    /// Bytes met on the direct path, which has no attachments: take the other one.
    Binary,
}

/// A conversion failure; the path is collected (innermost first) as the recursion unwinds,
/// so the successful path costs nothing.
struct Fail {
    kind: FailKind,
    path: Vec<PathStep>,
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail {
            kind: FailKind::Python(e),
            path: Vec::new(),
        }
    }
}

impl Fail {
    fn new(kind: FailKind) -> Self {
        Fail {
            kind,
            path: Vec::new(),
        }
    }

    fn at(mut self, step: PathStep) -> Self {
        self.path.push(step);
        self
    }

    fn into_pyerr(self, root: &str) -> PyErr {
        let mut at = root.to_string();
        for step in self.path.iter().rev() {
            match step {
                PathStep::Key(k) => {
                    let _ = write!(at, "[{}]", Value::String(k.clone()));
                }
                PathStep::Index(i) => {
                    let _ = write!(at, "[{i}]");
                }
            }
        }
        match self.kind {
            FailKind::Type(t) => PyTypeError::new_err(format!(
                "{at}: object of type '{t}' is not JSON serialisable"
            )),
            FailKind::Key(t) => PyTypeError::new_err(format!("{at}: keys must be str, not {t}")),
            FailKind::Overflow => PyOverflowError::new_err(format!(
                "{at}: int out of the 64-bit range that JSON numbers keep exactly"
            )),
            FailKind::NotFinite(f) => PyValueError::new_err(format!(
                "{at}: float {f} is not JSON compliant (NaN and infinities are refused)"
            )),
            FailKind::TooDeep => PyValueError::new_err(format!(
                "{at}: nested deeper than {MAX_DEPTH} levels (a circular reference?)"
            )),
            FailKind::Python(e) => e,
            FailKind::Binary => PyTypeError::new_err(format!(
                "{at}: binary data (bytes) cannot be sent here, only JSON values"
            )),
        }
    }
}

struct Walker {
    attachments: Vec<Bytes>,
}

impl Walker {
    fn value(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Fail> {
        if depth > MAX_DEPTH {
            return Err(Fail::new(FailKind::TooDeep));
        }
        // Most common types first; bool before int (bool is an int subclass).
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(s.to_str()?.to_owned()));
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = Map::with_capacity(d.len());
            for (k, v) in d.iter() {
                let key = match k.cast::<PyString>() {
                    Ok(k) => k.to_str()?.to_owned(),
                    Err(_) => return Err(Fail::new(FailKind::Key(type_name(&k)))),
                };
                match self.value(&v, depth + 1) {
                    Ok(value) => {
                        map.insert(key, value);
                    }
                    Err(e) => return Err(e.at(PathStep::Key(key))),
                }
            }
            return Ok(Value::Object(map));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(Value::Bool(obj.is_truthy()?));
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Value::Number(i.into()));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(Value::Number(u.into()));
            }
            return Err(Fail::new(FailKind::Overflow));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let f = f.value();
            return Number::from_f64(f)
                .map(Value::Number)
                .ok_or(Fail::new(FailKind::NotFinite(f)));
        }
        if obj.is_none() {
            return Ok(Value::Null);
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return self.sequence(l.iter(), depth);
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return self.sequence(t.iter(), depth);
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(self.attach(Bytes::copy_from_slice(b.as_bytes())));
        }
        if let Ok(b) = obj.cast::<PyByteArray>() {
            return Ok(self.attach(Bytes::from(b.to_vec())));
        }
        if obj.is_instance_of::<PyMemoryView>() {
            let data = obj.call_method0("tobytes")?;
            let data = data.cast::<PyBytes>().map_err(PyErr::from)?;
            return Ok(self.attach(Bytes::copy_from_slice(data.as_bytes())));
        }
        Err(Fail::new(FailKind::Type(type_name(obj))))
    }

    fn sequence<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        depth: usize,
    ) -> Result<Value, Fail> {
        let (lower, _) = items.size_hint();
        let mut out = Vec::with_capacity(lower);
        for (i, item) in items.enumerate() {
            match self.value(&item, depth + 1) {
                Ok(v) => out.push(v),
                Err(e) => return Err(e.at(PathStep::Index(i))),
            }
        }
        Ok(Value::Array(out))
    }

    fn attach(&mut self, data: Bytes) -> Value {
        let placeholder = Payload::placeholder(self.attachments.len());
        self.attachments.push(data);
        placeholder
    }
}

/// The direct path: a Python value serialised straight to JSON text (no `Value` tree,
/// one buffer), for the common emit of one argument without binary data. Failures are
/// kept in `fail` (serde's error type cannot carry them); the path is added as the
/// recursion unwinds.
struct Direct<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    depth: usize,
    fail: &'a RefCell<Option<Fail>>,
}

impl Direct<'_, '_> {
    fn fail<E: serde::ser::Error>(&self, kind: FailKind) -> E {
        *self.fail.borrow_mut() = Some(Fail::new(kind));
        E::custom("conversion failed")
    }

    fn step<E>(&self, result: Result<(), E>, step: impl FnOnce() -> PathStep) -> Result<(), E> {
        if result.is_err() {
            if let Some(fail) = self.fail.borrow_mut().as_mut() {
                fail.path.push(step());
            }
        }
        result
    }

    fn child<'b, 'p>(&'b self, obj: &'b Bound<'p, PyAny>) -> Direct<'b, 'p> {
        Direct {
            obj,
            depth: self.depth + 1,
            fail: self.fail,
        }
    }
}

impl Serialize for Direct<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let obj = self.obj;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(FailKind::TooDeep));
        }
        let py_err = |e: PyErr| {
            *self.fail.borrow_mut() = Some(Fail::from(e));
            S::Error::custom("conversion failed")
        };
        if let Ok(st) = obj.cast::<PyString>() {
            return s.serialize_str(st.to_str().map_err(py_err)?);
        }
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = s.serialize_map(Some(d.len()))?;
            for (k, v) in d.iter() {
                let Ok(key) = k.cast::<PyString>() else {
                    return Err(self.fail(FailKind::Key(type_name(&k))));
                };
                let key = key.to_str().map_err(py_err)?;
                let written = map.serialize_entry(key, &self.child(&v));
                self.step(written, || PathStep::Key(key.to_string()))?;
            }
            return map.end();
        }
        if obj.is_instance_of::<PyBool>() {
            return s.serialize_bool(obj.is_truthy().map_err(py_err)?);
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return s.serialize_i64(i);
            }
            if let Ok(u) = obj.extract::<u64>() {
                return s.serialize_u64(u);
            }
            return Err(self.fail(FailKind::Overflow));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let f = f.value();
            if !f.is_finite() {
                return Err(self.fail(FailKind::NotFinite(f)));
            }
            return s.serialize_f64(f);
        }
        if obj.is_none() {
            return s.serialize_unit();
        }
        if let Ok(l) = obj.cast::<PyList>() {
            return self.seq(s, l.len(), l.iter());
        }
        if let Ok(t) = obj.cast::<PyTuple>() {
            return self.seq(s, t.len(), t.iter());
        }
        if obj.is_instance_of::<PyBytes>()
            || obj.is_instance_of::<PyByteArray>()
            || obj.is_instance_of::<PyMemoryView>()
        {
            return Err(self.fail(FailKind::Binary));
        }
        Err(self.fail(FailKind::Type(type_name(obj))))
    }
}

impl<'py> Direct<'_, 'py> {
    fn seq<S: Serializer>(
        &self,
        s: S,
        len: usize,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(len))?;
        for (i, item) in items.enumerate() {
            let written = seq.serialize_element(&self.child(&item));
            self.step(written, || PathStep::Index(i))?;
        }
        seq.end()
    }
}

/// One emit argument as JSON text, or `None` when it holds binary data (use
/// [`to_payload`] then, which makes attachments).
pub(crate) fn to_raw_json(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Option<Box<RawValue>>> {
    let fail = RefCell::new(None);
    let direct = Direct {
        obj,
        depth: 0,
        fail: &fail,
    };
    match serde_json::value::to_raw_value(&direct) {
        Ok(raw) => Ok(Some(raw)),
        Err(e) => match fail.into_inner() {
            Some(Fail {
                kind: FailKind::Binary,
                ..
            }) => Ok(None),
            Some(fail) => Err(fail.into_pyerr(root)),
            None => Err(PyValueError::new_err(format!("{root}: {e}"))),
        },
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// The arguments of an emit, python-socketio style: `None` is no argument, a tuple is
/// several, anything else is one. `root` names the value in error messages.
pub(crate) fn to_payload(data: Option<&Bound<'_, PyAny>>, root: &str) -> PyResult<Payload> {
    let mut walker = Walker {
        attachments: Vec::new(),
    };
    let args = match data {
        None => Vec::new(),
        Some(d) if d.is_none() => Vec::new(),
        Some(d) => match d.cast::<PyTuple>() {
            Ok(t) => match walker.sequence(t.iter(), 0) {
                Ok(Value::Array(items)) => items,
                Ok(other) => vec![other],
                Err(e) => return Err(e.into_pyerr(root)),
            },
            Err(_) => vec![walker.value(d, 0).map_err(|e| e.into_pyerr(root))?],
        },
    };
    Ok(Payload {
        args,
        attachments: walker.attachments,
    })
}

/// One value without attachments (state entries, connect refusal data): bytes are refused.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    let mut walker = Walker {
        attachments: Vec::new(),
    };
    let value = walker.value(obj, 0).map_err(|e| e.into_pyerr(root))?;
    if !walker.attachments.is_empty() {
        return Err(PyTypeError::new_err(format!(
            "{root}: binary data (bytes) cannot be sent here, only JSON values"
        )));
    }
    Ok(value)
}

/// A JSON value as a Python object; placeholders become `bytes` of their attachment.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &Value,
    attachments: &[Bytes],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item, attachments)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            if let Some(data) = placeholder_index(value).and_then(|i| attachments.get(i)) {
                return Ok(PyBytes::new(py, data).into_any());
            }
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_python(py, v, attachments)?)?;
            }
            dict.into_any()
        }
    })
}

/// The arguments of a received event or ack as Python objects.
pub(crate) fn args_to_python<'py>(
    py: Python<'py>,
    payload: &Payload,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    payload
        .args
        .iter()
        .map(|v| to_python(py, v, &payload.attachments))
        .collect()
}

/// python-socketio's convention for what an ack delivers to `call`: nothing is `None`, one
/// argument is itself, several are a tuple.
pub(crate) fn ack_result<'py>(py: Python<'py>, payload: &Payload) -> PyResult<Bound<'py, PyAny>> {
    let mut args = args_to_python(py, payload)?;
    Ok(match args.len() {
        0 => py.None().into_bound(py),
        1 => args.remove(0),
        _ => PyTuple::new(py, args)?.into_any(),
    })
}

/// `Server.metrics()`: the core's counters, and with `emit_in_background` the
/// handoff's (`handoff_pending`, `handoff_failed`).
pub(crate) fn metrics<'py>(
    py: Python<'py>,
    m: &swarmcast::Metrics,
    handoff: Option<&swarmcast::Handoff>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("emits", m.emits)?;
    d.set_item("deliveries", m.deliveries)?;
    d.set_item("bytes_queued", m.bytes_queued)?;
    d.set_item("dropped_queue_full", m.dropped_queue_full)?;
    d.set_item("dropped_volatile", m.dropped_volatile)?;
    d.set_item("connects", m.connects)?;
    d.set_item("disconnects", m.disconnects)?;
    d.set_item("connects_refused", m.connects_refused)?;
    d.set_item("slow_consumers", m.slow_consumers)?;
    d.set_item("recoveries", m.recoveries)?;
    if let Some(handoff) = handoff {
        d.set_item("handoff_pending", handoff.pending())?;
        d.set_item("handoff_failed", handoff.failed())?;
    }
    Ok(d)
}
