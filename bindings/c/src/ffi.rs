//! Checked conversions of C arguments. Every raw pointer the API receives goes through
//! one of these, so the unsafe surface is small and in one place.

use std::ffi::{c_char, c_void, CStr, CString};

use serde_json::value::RawValue;

use crate::result::swarmcast_result;

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged
/// for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char) -> Result<&'a str, swarmcast_result> {
    if ptr.is_null() {
        return Err(swarmcast_result::NullParameter);
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller promises.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|_| swarmcast_result::InvalidUtf8)
}

/// A (pointer, length) byte buffer argument.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const c_char,
    len: usize,
) -> Result<&'a [u8], swarmcast_result> {
    if ptr.is_null() {
        return Err(swarmcast_result::NullParameter);
    }
    // SAFETY: non-NULL, `len` readable bytes, as the caller promises; `c_char` and `u8`
    // have the same size and alignment.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// A (pointer, length) JSON argument: one JSON value, checked, kept as written.
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn json_arg<'a>(
    ptr: *const c_char,
    len: usize,
) -> Result<&'a RawValue, swarmcast_result> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { bytes_arg(ptr, len)? };
    let text = std::str::from_utf8(bytes).map_err(|_| swarmcast_result::InvalidUtf8)?;
    serde_json::from_str::<&RawValue>(text).map_err(|_| swarmcast_result::InvalidJson)
}

/// Check that an out-parameter is not NULL (before doing any work).
pub(crate) fn out_arg<T>(ptr: *mut T) -> Result<*mut T, swarmcast_result> {
    if ptr.is_null() {
        Err(swarmcast_result::NullParameter)
    } else {
        Ok(ptr)
    }
}

/// Copy `s` into `buf` (capacity `len` > 0), truncated to `len - 1` bytes, and
/// NUL-terminate it. Returns the number of bytes copied before the NUL.
///
/// # Safety
/// `buf` points to `len` writable bytes and `len > 0`.
pub(crate) unsafe fn write_c_string(buf: *mut c_char, len: usize, s: &str) -> usize {
    let n = s.len().min(len.saturating_sub(1));
    // SAFETY: `n < len` bytes fit in `buf`; `s` cannot overlap a caller's buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), buf, n);
        buf.add(n).write(0);
    }
    n
}

/// A string for C: NUL-terminated. Interior NULs (possible in client-sent event
/// names) are removed, since C would stop reading there.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        let cleaned: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
        CString::new(cleaned).unwrap_or_default()
    })
}

/// The caller's `void *userdata`, carried to the dispatcher threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(*mut c_void);

impl UserData {
    pub fn new(ptr: *mut c_void) -> Self {
        Self(ptr)
    }

    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    pub fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: swarmcast never dereferences the pointer; it only hands it back to the
// caller's callbacks, on swarmcast's threads. The API documentation makes the caller
// responsible for the pointee being usable from those threads.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer value itself is only copied.
unsafe impl Sync for UserData {}
