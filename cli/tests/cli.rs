//! The `swarmcast` binary as users run it: `serve` on an ephemeral loopback port
//! answers /healthz and POST /api/emit. (This test is also what makes
//! `cargo test --workspace` build target/debug/swarmcast, which the Node and Python
//! cluster suites start.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the whole response.
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn serve_answers_healthz_and_emit() {
    let child = Command::new(env!("CARGO_BIN_EXE_swarmcast"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(["--api-key", "k"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn target/debug/swarmcast");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("swarmcast listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();

    let health = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");

    let body = r#"{"event":"tick","data":1}"#;
    let unauthorized = http(
        &addr,
        &format!(
            "POST /api/emit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(unauthorized.starts_with("HTTP/1.1 401"), "{unauthorized}");
    let emitted = http(
        &addr,
        &format!(
            "POST /api/emit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Authorization: Bearer k\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(emitted.starts_with("HTTP/1.1 200"), "{emitted}");
    assert!(emitted.contains(r#""delivered":0"#), "{emitted}");
}

#[test]
fn help_lists_the_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_swarmcast"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
    #[cfg(feature = "redis")]
    assert!(text.contains("emit"), "{text}");
}
