//! The panic boundary every exported function runs in: a Rust panic must never unwind
//! into C (that is undefined behaviour), so it becomes `SWARMCAST_RESULT_PANIC` (or
//! nothing, for functions without a result).

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::result::swarmcast_result;

/// Run `f`, turning `Ok` into `SWARMCAST_RESULT_OK`, `Err(code)` into `code` and a panic
/// into `SWARMCAST_RESULT_PANIC`.
///
/// `AssertUnwindSafe`: after a panic the object involved may hold a half-done change;
/// the locks used here (parking_lot) do not poison, and the caller learns of the panic
/// through the result. That is the same trade rustls-ffi makes.
pub(crate) fn boundary<F>(f: F) -> swarmcast_result
where
    F: FnOnce() -> Result<(), swarmcast_result>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => swarmcast_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => swarmcast_result::Panic,
    }
}

/// [`boundary`] for functions that return nothing (`_free`): a panic is swallowed.
pub(crate) fn boundary_void<F: FnOnce()>(f: F) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// [`boundary`] for functions that return a value; a panic gives `fallback`.
pub(crate) fn boundary_value<T, F: FnOnce() -> T>(fallback: T, f: F) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}
