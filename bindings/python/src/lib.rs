//! `swarmcast._native`: the pyo3 extension module behind the `swarmcast` Python package.
//!
//! A thin layer: it converts Python values to the core's types and back, forwards to the
//! core with the GIL released, and runs Python handlers on the core's [`swarmcast::Dispatcher`]
//! threads. No `unsafe` (the workspace lint denies it). Users import `swarmcast`, never
//! this module.

mod args;
mod convert;
mod emit;
mod environ;
mod errors;
mod handlers;
mod pylog;
#[cfg(feature = "redis")]
mod redis;
mod server;
mod state;
mod wsgi;

use pyo3::prelude::*;

/// The extension module.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::PyServer>()?;
    m.add_class::<server::HandlerDecorator>()?;
    m.add_class::<handlers::PyAck>()?;
    m.add_class::<state::PyStateMap>()?;
    #[cfg(feature = "redis")]
    m.add_class::<redis::PyRedisEmitter>()?;
    m.add_function(wrap_pyfunction!(server::_stop_all, m)?)?;
    m.add_function(wrap_pyfunction!(server::_enable_logging, m)?)?;
    errors::register(m)?;
    Ok(())
}
