//! Raw Socket.IO v5 / Engine.IO v4 clients: WebSocket (tokio-tungstenite) and
//! long-polling (HTTP/1.1 by hand on a `TcpStream`), plus the control client that
//! starts the producer.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::rawws::{Frame as RawFrame, RawWs};
use crate::run::{now_us, Fault, Packet, Run};

/// Where and how to connect.
pub struct Target {
    pub addr: SocketAddr,
    /// Engine.IO path with its trailing slash, e.g. `/socket.io/`.
    pub path: String,
    pub connect_timeout: Duration,
}

type Ws = WebSocketStream<TcpStream>;

/// Receive buffer of every client socket, in bytes (0 = the kernel's autotuning).
static RCVBUF: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Fix the receive buffer of the sockets opened from now on.
pub fn set_rcvbuf(bytes: u32) {
    RCVBUF.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// A TCP connection from `src` (one of several 127.0.0.x, so that more than one
/// address pair's ~28k ephemeral ports are available).
pub async fn tcp(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let rcvbuf = RCVBUF.load(std::sync::atomic::Ordering::Relaxed);
    if rcvbuf > 0 {
        socket.set_recv_buffer_size(rcvbuf)?;
    }
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn ws_config() -> WebSocketConfig {
    // Thousands of clients in one process: small buffers, still many frames per read.
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// An error and whether it is the peer's fault (protocol) or the connection's.
type Failure = (Fault, String);

fn connect_err(e: impl std::fmt::Display) -> Failure {
    (Fault::Connect, e.to_string())
}

fn proto_err(e: impl std::fmt::Display) -> Failure {
    (Fault::Protocol, e.to_string())
}

/// WebSocket handshake, Engine.IO OPEN, Socket.IO CONNECT to `nsp` and its reply.
async fn ws_open(target: &Target, src: IpAddr, nsp: &str) -> Result<Ws, Failure> {
    let stream = tcp(src, target.addr).await.map_err(connect_err)?;
    let url = format!(
        "ws://{}{}?EIO=4&transport=websocket",
        target.addr, target.path
    );
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(ws_config()))
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Io(e) => connect_err(e),
                e => proto_err(format!("websocket handshake: {e}")),
            })?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
        other => return Err(proto_err(format!("expected OPEN, got {other:?}"))),
    }
    let connect = if nsp == "/" {
        "40".to_string()
    } else {
        format!("40{nsp},")
    };
    let reply = if nsp == "/" {
        "40".to_string()
    } else {
        format!("40{nsp},")
    };
    ws.send(Message::text(connect)).await.map_err(connect_err)?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with(reply.as_str()) => return Ok(ws),
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.map_err(connect_err)?;
            }
            Some(Ok(Message::Text(t))) => {
                return Err(proto_err(format!("expected CONNECT reply, got {t:?}")))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(connect_err(e)),
            None => return Err(connect_err("closed before CONNECT reply")),
        }
    }
}

/// One WebSocket client of the main namespace: connect, then count ticks until the
/// process ends.
pub async fn ws_client(
    run: Rc<Run>,
    target: Rc<Target>,
    id: usize,
    src: IpAddr,
    phase_start: Instant,
    permit: OwnedSemaphorePermit,
) {
    let opened = tokio::time::timeout(target.connect_timeout, ws_open(&target, src, "/")).await;
    drop(permit);
    let mut ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err((kind, msg))) => {
            if kind == Fault::Protocol {
                run.fault(Fault::Connect, || format!("client {id}: {msg}"));
            }
            run.fault(kind, || format!("client {id}: {msg}"));
            return;
        }
        Err(_) => {
            run.fault(Fault::Connect, || format!("client {id}: connect timed out"));
            return;
        }
    };
    run.on_connected(id, phase_start.elapsed().as_secs_f64() * 1e3);
    let end = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match run.on_packet(id, t.as_bytes(), now_us()) {
                Packet::Handled => {}
                Packet::Ping => {
                    if let Err(e) = ws.send(Message::text("3")).await {
                        break (Fault::Disconnect, format!("pong: {e}"));
                    }
                }
                Packet::Closed => break (Fault::Disconnect, format!("server closed: {t}")),
                Packet::Bad => break (Fault::Protocol, format!("unexpected packet {t:?}")),
            },
            Some(Ok(Message::Close(frame))) => {
                break (Fault::Disconnect, format!("close frame {frame:?}"))
            }
            Some(Ok(Message::Binary(_))) => {
                break (Fault::Protocol, "unexpected binary frame".to_string())
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break (Fault::Disconnect, e.to_string()),
            None => break (Fault::Disconnect, "stream ended".to_string()),
        }
    };
    run.on_closed();
    run.fault(end.0, || format!("client {id}: {}", end.1));
}

/// HTTP/1.1 on one keep-alive connection, reconnecting when the server closes it.
struct Http {
    conn: Option<BufReader<TcpStream>>,
    src: IpAddr,
    addr: SocketAddr,
}

impl Http {
    async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(BufReader::with_capacity(
                8 * 1024,
                tcp(self.src, self.addr).await.map_err(connect_err)?,
            )),
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        conn.get_mut()
            .write_all(&bytes)
            .await
            .map_err(connect_err)?;

        let mut line = Vec::new();
        let mut status = 0u16;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        let mut first = true;
        loop {
            line.clear();
            if conn
                .read_until(b'\n', &mut line)
                .await
                .map_err(connect_err)?
                == 0
            {
                return Err(connect_err("connection closed"));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if first {
                first = false;
                status = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| proto_err(format!("bad status line {text:?}")))?;
                close = text.starts_with("HTTP/1.0");
                continue;
            }
            if text.is_empty() {
                break;
            }
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_until(b'\n', &mut line)
                    .await
                    .map_err(connect_err)?;
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&line)
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or(""),
                    16,
                )
                .map_err(|_| proto_err("bad chunk size"))?;
                let start = out.len();
                out.resize(start + size + 2, 0);
                conn.read_exact(&mut out[start..])
                    .await
                    .map_err(connect_err)?;
                out.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            out.resize(n, 0);
            conn.read_exact(&mut out).await.map_err(connect_err)?;
        } else {
            conn.read_to_end(&mut out).await.map_err(connect_err)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        if status != 200 {
            return Err(proto_err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&out)
            )));
        }
        Ok(out)
    }
}

/// One long-polling client of the main namespace: a GET connection that polls and a
/// POST connection that sends, as browsers use them.
pub async fn polling_client(
    run: Rc<Run>,
    target: Rc<Target>,
    id: usize,
    src: IpAddr,
    phase_start: Instant,
    permit: OwnedSemaphorePermit,
) {
    let mut permit = Some(permit);
    let deadline = tokio::time::Instant::now() + target.connect_timeout;
    let end = polling_loop(&run, &target, id, src, phase_start, &mut permit, deadline).await;
    if run.seqs.borrow().get(id).is_some_and(|t| t.connected) {
        run.on_closed();
    } else if end.0 == Fault::Protocol {
        run.fault(Fault::Connect, || format!("polling client {id}: {}", end.1));
    }
    run.fault(end.0, || format!("polling client {id}: {}", end.1));
}

async fn polling_loop(
    run: &Run,
    target: &Target,
    id: usize,
    src: IpAddr,
    phase_start: Instant,
    permit: &mut Option<OwnedSemaphorePermit>,
    deadline: tokio::time::Instant,
) -> Failure {
    let mut get = Http {
        conn: None,
        src,
        addr: target.addr,
    };
    let mut post = Http {
        conn: None,
        src,
        addr: target.addr,
    };
    let base = format!("{}?EIO=4&transport=polling", target.path);
    let open = match tokio::time::timeout_at(deadline, get.request("GET", &base, b"")).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return e,
        Err(_) => return (Fault::Connect, "handshake timed out".into()),
    };
    let Some(sid) = (|| {
        let text = std::str::from_utf8(&open).ok()?;
        let at = text.find("\"sid\":\"")? + 7;
        let len = text[at..].find('"')?;
        Some(text[at..at + len].to_string())
    })() else {
        return (
            Fault::Protocol,
            format!("bad OPEN {:?}", String::from_utf8_lossy(&open)),
        );
    };
    let url = format!("{base}&sid={sid}");
    if let Err(e) = post.request("POST", &url, b"40").await {
        return e;
    }
    let mut connected = false;
    loop {
        let body = if connected {
            get.request("GET", &url, b"").await
        } else {
            match tokio::time::timeout_at(deadline, get.request("GET", &url, b"")).await {
                Ok(r) => r,
                Err(_) => return (Fault::Connect, "CONNECT reply timed out".into()),
            }
        };
        let body = match body {
            Ok(b) => b,
            Err((Fault::Connect, msg)) if connected => return (Fault::Disconnect, msg),
            Err(e) => return e,
        };
        // The packets of one response arrived together.
        let now = now_us();
        for packet in body.split(|b| *b == 0x1e) {
            if !connected {
                if packet.starts_with(b"40") {
                    connected = true;
                    permit.take();
                    run.on_connected(id, phase_start.elapsed().as_secs_f64() * 1e3);
                    continue;
                }
                if packet == b"2" {
                    if let Err(e) = post.request("POST", &url, b"3").await {
                        return e;
                    }
                    continue;
                }
                return (
                    Fault::Protocol,
                    format!(
                        "expected CONNECT reply, got {:?}",
                        String::from_utf8_lossy(packet)
                    ),
                );
            }
            match run.on_packet(id, packet, now) {
                Packet::Handled => {}
                Packet::Ping => {
                    if let Err((_, msg)) = post.request("POST", &url, b"3").await {
                        return (Fault::Disconnect, format!("pong: {msg}"));
                    }
                }
                Packet::Closed => return (Fault::Disconnect, "server closed".into()),
                Packet::Bad if packet.first() == Some(&b'b') => {
                    run.other_packets.set(run.other_packets.get() + 1)
                }
                Packet::Bad => {
                    return (
                        Fault::Protocol,
                        format!("unexpected packet {:?}", String::from_utf8_lossy(packet)),
                    )
                }
            }
        }
    }
}

/// A WebSocket client of namespace `/bench` that drives the producer with acked events.
pub struct Control {
    ws: Ws,
    next_id: u64,
}

impl Control {
    pub async fn connect(target: &Target, src: IpAddr) -> Result<Self, String> {
        let ws = tokio::time::timeout(target.connect_timeout, ws_open(target, src, "/bench"))
            .await
            .map_err(|_| "control connect timed out".to_string())?
            .map_err(|(_, e)| e)?;
        Ok(Self { ws, next_id: 1 })
    }

    /// Emit `event` with one JSON argument and wait (10 s at most) for its ack.
    pub async fn call(
        &mut self,
        event: &str,
        arg: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let packet = format!("42/bench,{id}{}", serde_json::json!([event, arg]));
        let prefix = format!("43/bench,{id}");
        self.ws
            .send(Message::text(packet))
            .await
            .map_err(|e| e.to_string())?;
        let wait = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                        self.ws
                            .send(Message::text("3"))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Some(rest) = t.as_str().strip_prefix(prefix.as_str()) {
                            let mut args: Vec<serde_json::Value> =
                                serde_json::from_str(rest).map_err(|e| e.to_string())?;
                            return Ok(if args.is_empty() {
                                serde_json::Value::Null
                            } else {
                                args.swap_remove(0)
                            });
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("control connection closed".into()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| format!("no ack for {event}"))?
    }
}

/// Engine.IO OPEN and Socket.IO CONNECT to `/` over the raw WebSocket client.
async fn raw_open(target: &Target, src: IpAddr) -> Result<RawWs, Failure> {
    let path = format!("{}?EIO=4&transport=websocket", target.path);
    let mut ws = RawWs::connect(src, target.addr, &path).await.map_err(|e| {
        match e.strip_prefix("protocol: ") {
            Some(e) => proto_err(e),
            None => connect_err(e),
        }
    })?;
    // 0 = waiting for OPEN, 1 = waiting for the CONNECT reply, 2 = connected.
    let mut stage = 0u8;
    while stage < 2 {
        let mut bad: Option<String> = None;
        let mut pong = false;
        let mut send_connect = false;
        let open = ws
            .read_messages(|frame| match frame {
                RawFrame::Text(t) if t == b"2" => {
                    pong = true;
                    true
                }
                RawFrame::Text(t) if stage == 0 && t.first() == Some(&b'0') => {
                    stage = 1;
                    send_connect = true;
                    true
                }
                RawFrame::Text(t) if stage == 1 && t.starts_with(b"40") => {
                    stage = 2;
                    false
                }
                RawFrame::Text(t) => {
                    bad = Some(format!(
                        "unexpected {:?} before CONNECT reply",
                        String::from_utf8_lossy(t)
                    ));
                    false
                }
                RawFrame::Binary | RawFrame::Close => {
                    bad = Some("closed before CONNECT reply".into());
                    false
                }
            })
            .await
            .map_err(connect_err)?;
        if let Some(e) = bad {
            return Err(proto_err(e));
        }
        if !open && stage < 2 {
            return Err(connect_err("closed before CONNECT reply"));
        }
        if pong {
            ws.send_text("3").await.map_err(connect_err)?;
        }
        if send_connect {
            ws.send_text("40").await.map_err(connect_err)?;
        }
    }
    Ok(ws)
}

/// One WebSocket client of the main namespace on the raw client (the default).
pub async fn raw_ws_client(
    run: Rc<Run>,
    target: Rc<Target>,
    id: usize,
    src: IpAddr,
    phase_start: Instant,
    permit: OwnedSemaphorePermit,
) {
    let opened = tokio::time::timeout(target.connect_timeout, raw_open(&target, src)).await;
    drop(permit);
    let mut ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err((kind, msg))) => {
            if kind == Fault::Protocol {
                run.fault(Fault::Connect, || format!("client {id}: {msg}"));
            }
            run.fault(kind, || format!("client {id}: {msg}"));
            return;
        }
        Err(_) => {
            run.fault(Fault::Connect, || format!("client {id}: connect timed out"));
            return;
        }
    };
    run.on_connected(id, phase_start.elapsed().as_secs_f64() * 1e3);
    let end = loop {
        let mut pong = false;
        let mut end: Option<Failure> = None;
        // One clock read for all the messages of one read.
        let mut now = None;
        let r = ws
            .read_messages(|frame| match frame {
                RawFrame::Text(t) => match run.on_packet(id, t, *now.get_or_insert_with(now_us)) {
                    Packet::Handled => true,
                    Packet::Ping => {
                        pong = true;
                        true
                    }
                    Packet::Closed => {
                        end = Some((
                            Fault::Disconnect,
                            format!("server closed: {}", String::from_utf8_lossy(t)),
                        ));
                        false
                    }
                    Packet::Bad => {
                        end = Some((
                            Fault::Protocol,
                            format!("unexpected packet {:?}", String::from_utf8_lossy(t)),
                        ));
                        false
                    }
                },
                RawFrame::Binary => {
                    end = Some((Fault::Protocol, "unexpected binary frame".into()));
                    false
                }
                RawFrame::Close => {
                    end = Some((Fault::Disconnect, "close frame".into()));
                    false
                }
            })
            .await;
        match r {
            Ok(true) => {}
            Ok(false) => break end.unwrap_or((Fault::Disconnect, "connection closed".into())),
            Err(e) => match e.strip_prefix("protocol: ") {
                Some(e) => break (Fault::Protocol, e.to_string()),
                None => break (Fault::Disconnect, e),
            },
        }
        if pong {
            if let Err(e) = ws.send_text("3").await {
                break (Fault::Disconnect, format!("pong: {e}"));
            }
        }
    };
    run.on_closed();
    run.fault(end.0, || format!("client {id}: {}", end.1));
}
