//! Version of the library, in the header (macros) and at run time.

use std::ffi::c_char;

use crate::panic::boundary_value;

// cbindgen copies these literals into the header as macros (and `after_includes` in
// cbindgen.toml spells SWARMCAST_VERSION from them). They must equal the package
// version: the tests below check the constants and the committed header, and
// tests/c/bad_input.c checks SWARMCAST_VERSION against swarmcast_version().

/// Major version of the swarmcast C API this header describes.
pub const SWARMCAST_VERSION_MAJOR: u32 = 0;
/// Minor version of the swarmcast C API this header describes.
pub const SWARMCAST_VERSION_MINOR: u32 = 1;
/// Patch version of the swarmcast C API this header describes.
pub const SWARMCAST_VERSION_PATCH: u32 = 0;

static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The version of the library actually linked, "MAJOR.MINOR.PATCH" (compare with
/// `SWARMCAST_VERSION` to detect a header/library mismatch). A static string: never
/// free it.
///
/// Thread safety: any thread.
#[no_mangle]
pub extern "C" fn swarmcast_version() -> *const c_char {
    boundary_value(std::ptr::null(), || VERSION_C.as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_cargo_version() {
        assert_eq!(
            SWARMCAST_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            SWARMCAST_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            SWARMCAST_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }

    #[test]
    fn header_version_matches_cargo() {
        let header = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../include/swarmcast.h"
        ))
        .expect("include/swarmcast.h exists");
        let define = |name: &str| -> String {
            header
                .lines()
                .find_map(|l| {
                    let rest = l.strip_prefix("#define ")?;
                    let (n, v) = rest.split_once(' ')?;
                    (n == name).then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("{name} is defined in the header"))
        };
        assert_eq!(
            define("SWARMCAST_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            define("SWARMCAST_VERSION_MINOR"),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            define("SWARMCAST_VERSION_PATCH"),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        assert!(header.contains("#define SWARMCAST_VERSION \\"));
    }
}
