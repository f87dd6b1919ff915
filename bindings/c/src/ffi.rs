//! Checked conversions of C arguments. Every raw pointer the API receives goes through
//! one of these, so the unsafe surface is small and in one place.

use std::ffi::{c_char, c_void, CStr, CString};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
/// Checked beyond the grammar: nesting deeper than [`SWARMCAST_MAX_JSON_DEPTH`] and numbers no
/// double can hold (`1e400`, which a browser's `JSON.parse` turns into `Infinity`) are
/// `SWARMCAST_RESULT_INVALID_JSON`.
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
    check_json(text)?;
    serde_json::from_str::<&RawValue>(text).map_err(|_| swarmcast_result::InvalidJson)
}

/// Deepest nesting of arrays and objects a JSON argument may have (serde_json's own
/// recursion limit of 128 lets 127 levels through; the core parses what clients send
/// with the same limit); deeper is `SWARMCAST_RESULT_INVALID_JSON`.
pub const SWARMCAST_MAX_JSON_DEPTH: usize = 127;

/// One pass over `text` without building it: the grammar, the depth and every number
/// finite. serde_json stops at [`SWARMCAST_MAX_JSON_DEPTH`] levels ("recursion limit exceeded")
/// and refuses out-of-range numbers when a visitor asks for them (its raw-value and
/// ignore paths do neither, hence this pass).
fn check_json(text: &str) -> Result<(), swarmcast_result> {
    serde_json::from_str::<Checked>(text)
        .map(drop)
        .map_err(|_| swarmcast_result::InvalidJson)
}

/// A JSON value visited (never stored) by [`check_json`].
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked)
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// A name argument (event, room, state map or key): NUL-terminated UTF-8, not empty.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn name_arg<'a>(ptr: *const c_char) -> Result<&'a str, swarmcast_result> {
    // SAFETY: forwarded from the caller.
    let name = unsafe { str_arg(ptr)? };
    if name.is_empty() {
        return Err(swarmcast_result::InvalidArgument);
    }
    Ok(name)
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
/// names) are removed, since C would stop reading there; use [`c_bytes`] where the
/// exact bytes matter.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        let cleaned: Vec<u8> = s.bytes().filter(|b| *b != 0).collect();
        CString::new(cleaned).unwrap_or_default()
    })
}

/// The exact bytes of `s` followed by a NUL, for a (pointer, length) pair: interior
/// NULs are kept (the length tells C where the string ends).
pub(crate) fn c_bytes(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_and_non_finite_numbers_are_refused() {
        assert!(check_json("[1,{\"a\":[2.5,-3e10]},\"x\",null,true]").is_ok());
        assert_eq!(check_json("1e400"), Err(swarmcast_result::InvalidJson));
        assert_eq!(
            check_json("[{\"a\":-1e999}]"),
            Err(swarmcast_result::InvalidJson)
        );
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(check_json(&nested(SWARMCAST_MAX_JSON_DEPTH)).is_ok());
        assert_eq!(
            check_json(&nested(SWARMCAST_MAX_JSON_DEPTH + 1)),
            Err(swarmcast_result::InvalidJson)
        );
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(check_json(&deep), Err(swarmcast_result::InvalidJson));
        assert_eq!(check_json("[1,]"), Err(swarmcast_result::InvalidJson));
    }
}
