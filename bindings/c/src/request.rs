//! The handshake request of a connected socket (peer address, query string, headers),
//! as handlers in Python see it in `flask.request` and Rust in `Socket::request`.

use std::ffi::c_char;

use crate::ffi::{out_arg, str_arg};
use crate::panic::boundary;
use crate::result::swarmcast_result;
use crate::server::{namespace_arg, server_arg, swarmcast_server};

/// What `swarmcast_server_socket_request` reads from a socket's handshake request.
/// Passed as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum swarmcast_request_field {
    /// The peer's address, `"ip:port"` (`"[ipv6]:port"` for IPv6).
    RemoteAddr = 0,
    /// The query string, without `?`, as the client sent it (percent-encoded).
    Query = 1,
    /// The value of the header named `header_name` (case-insensitive); repeated
    /// headers are joined with `", "`.
    Header = 2,
}

/// Read `field` of the HTTP request that opened socket `socket_id`'s connection
/// (namespace `nsp`): written into `buf`, NUL-terminated, its length before the NUL
/// into `*out_n`. `header_name` is read only for `SWARMCAST_REQUEST_FIELD_HEADER` (may
/// be NULL otherwise).
///
/// Returns `SWARMCAST_RESULT_UNKNOWN_SOCKET` if the socket is not connected to this
/// node, `SWARMCAST_RESULT_NOT_FOUND` when the request has no such header (or the
/// peer's address is unknown), `SWARMCAST_RESULT_INVALID_ARGUMENT` for an unknown
/// `field`, and `SWARMCAST_RESULT_INSUFFICIENT_SIZE` when the value and its NUL do
/// not fit in `len` bytes: then, unlike other outputs, `*out_n` receives the length
/// the value needs (without the NUL), and `buf` is left as it was. A header value that
/// is not UTF-8 is written as its bytes.
///
/// ```c
/// char ua[256];
/// size_t n;
/// if (swarmcast_server_socket_request(server, "/", sid, SWARMCAST_REQUEST_FIELD_HEADER,
///                                     "user-agent", ua, sizeof ua, &n) == SWARMCAST_RESULT_OK)
///     printf("%s\n", ua);
/// ```
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp`, `socket_id` (and `header_name` for a header) are
/// NUL-terminated strings; `buf` points to `len` writable bytes; `out_n` to a writable
/// `size_t`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn swarmcast_server_socket_request(
    server: *const swarmcast_server,
    nsp: *const c_char,
    socket_id: *const c_char,
    field: u32,
    header_name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, sid) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                str_arg(socket_id)?,
            )
        };
        let out_n = out_arg(out_n)?;
        let buf = out_arg(buf)?;
        let header = if field == swarmcast_request_field::Header as u32 {
            // SAFETY: as documented above.
            Some(unsafe { str_arg(header_name)? })
        } else {
            None
        };
        let socket = s
            .live_namespace(nsp)?
            .socket(sid)
            .ok_or(swarmcast_result::UnknownSocket)?;
        let request = socket.request().ok_or(swarmcast_result::NotFound)?;
        let value: Vec<u8> = match (field, header) {
            (f, _) if f == swarmcast_request_field::RemoteAddr as u32 => request
                .remote_addr
                .ok_or(swarmcast_result::NotFound)?
                .to_string()
                .into_bytes(),
            (f, _) if f == swarmcast_request_field::Query as u32 => {
                request.query.clone().into_bytes()
            }
            (_, Some(name)) => {
                let mut values = request.headers.get_all(name).iter().peekable();
                if values.peek().is_none() {
                    return Err(swarmcast_result::NotFound);
                }
                let mut joined = Vec::new();
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(b", ");
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                joined
            }
            _ => return Err(swarmcast_result::InvalidArgument),
        };
        if value.len() >= len {
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { out_n.write(value.len()) };
            return Err(swarmcast_result::InsufficientSize);
        }
        // SAFETY: `value.len() + 1 <= len` bytes fit in `buf`, which the caller
        // promises; a Rust buffer cannot overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr().cast::<c_char>(), buf, value.len());
            buf.add(value.len()).write(0);
            out_n.write(value.len());
        }
        Ok(())
    })
}
