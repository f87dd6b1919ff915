//! The C API of swarmcast: `libswarmcast.so` / `libswarmcast.a`, described by the
//! generated header `include/swarmcast.h` (cbindgen, see `cbindgen.toml`).
//!
//! Conventions (the rustls-ffi ones, see `docs/c.md`):
//! - every fallible function returns a [`swarmcast_result`]; numbers are stable;
//! - outputs are out-parameters, last, written only on success;
//! - a buffer pointer is always followed by its length;
//! - every exported body runs inside a panic boundary ([`panic`]);
//! - NULL pointer arguments give `SWARMCAST_RESULT_NULL_PARAMETER`; `_free(NULL)` is a no-op;
//! - objects are opaque and come in `_new` / `_free` pairs.
//!
//! The crate holds no logic of its own beyond argument checks and the hand-over of
//! callbacks to the core's [`sc::Dispatcher`]: everything else is the core's (the
//! Redis emitter and adapter included, feature `redis`, on by default).

#![allow(non_camel_case_types)]

mod callbacks;
mod config;
mod ffi;
mod limits;
mod log;
mod panic;
mod redis;
mod request;
mod result;
mod rooms;
mod server;
mod version;

pub use callbacks::*;
pub use config::*;
pub use ffi::SWARMCAST_MAX_JSON_DEPTH;
pub use limits::*;
pub use log::*;
pub use redis::*;
pub use result::*;
pub use rooms::*;
pub use server::*;
pub use version::*;
