//! Link settings of libswarmcast.so: a versioned SONAME, so that programs linked
//! against this release refuse a later, incompatible one (see docs/c.md, "ABI and
//! stability"). 0.x releases are compatible within a minor version (cargo-c's rule):
//! SONAME `libswarmcast.so.0.MINOR`; from 1.0, `libswarmcast.so.MAJOR`.
//!
//! Exported symbols need no version script: rustc already exports only the
//! `#[no_mangle]` functions from a cdylib (`swarmcast_*`). The static library is
//! narrowed by `bindings/c/install.sh`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "freebsd" {
        return;
    }
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let soname = if major == "0" {
        format!("libswarmcast.so.0.{minor}")
    } else {
        format!("libswarmcast.so.{major}")
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
}
