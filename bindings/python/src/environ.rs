//! A socket's handshake request as a WSGI environ dictionary (PEP 3333 keys), the
//! shape python-socketio hands its connect handlers and Flask builds its `request` from.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use swarmcast::Socket;

/// The environ of `socket`'s connection: `REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`,
/// `REMOTE_ADDR`/`REMOTE_PORT`, `SERVER_NAME`/`SERVER_PORT`, `HTTP_*` headers (repeated
/// headers joined with `, `, cookies with `; `), `CONTENT_TYPE`/`CONTENT_LENGTH`,
/// `wsgi.url_scheme`, and `swarmcast.eio_sid` (the Engine.IO session id).
pub(crate) fn environ<'py>(
    py: Python<'py>,
    socket: &Socket,
    path: &str,
    server: (&str, u16),
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    env.set_item("REQUEST_METHOD", "GET")?;
    env.set_item("SCRIPT_NAME", "")?;
    env.set_item("PATH_INFO", format!("{}/", path.trim_end_matches('/')))?;
    env.set_item("SERVER_NAME", server.0)?;
    env.set_item("SERVER_PORT", server.1.to_string())?;
    env.set_item("SERVER_PROTOCOL", "HTTP/1.1")?;
    env.set_item("wsgi.url_scheme", "http")?;
    env.set_item("swarmcast.eio_sid", socket.engine_sid())?;
    let Some(request) = socket.request() else {
        env.set_item("QUERY_STRING", "")?;
        return Ok(env);
    };
    env.set_item("QUERY_STRING", &request.query)?;
    if let Some(addr) = request.remote_addr {
        env.set_item("REMOTE_ADDR", addr.ip().to_string())?;
        env.set_item("REMOTE_PORT", addr.port().to_string())?;
    }
    set_headers(&env, &request.headers)?;
    Ok(env)
}

/// The request headers as PEP 3333 keys: `CONTENT_TYPE`, `CONTENT_LENGTH` and
/// `HTTP_*`, each value's bytes as latin-1 characters; a repeated header is joined
/// with `, ` (RFC 9110), cookies with `; ` (RFC 6265).
pub(crate) fn set_headers(env: &Bound<'_, PyDict>, headers: &hyper::HeaderMap) -> PyResult<()> {
    for name in headers.keys() {
        let key = name.as_str().to_ascii_uppercase().replace('-', "_");
        let key = match key.as_str() {
            "CONTENT_TYPE" | "CONTENT_LENGTH" => key,
            _ => format!("HTTP_{key}"),
        };
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| latin1(v.as_bytes()))
            .collect();
        let joined = values.join(if key == "HTTP_COOKIE" { "; " } else { ", " });
        env.set_item(key, joined)?;
    }
    Ok(())
}

/// Bytes as the latin-1 characters PEP 3333 calls "native strings".
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}
