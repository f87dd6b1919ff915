//! A minimal WebSocket client for the tick receivers, so that the load tool costs less
//! per delivered event than the servers it measures: the RFC 6455 handshake by hand,
//! then unmasked server frames parsed in place from one read buffer (no allocation,
//! no copy per message), masked client frames for the few packets a client sends.
//! `--ws-client tungstenite` uses tokio-tungstenite instead, as a cross-check.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::tcp;

/// What a read produced.
pub enum Frame<'a> {
    Text(&'a [u8]),
    Binary,
    Close,
}

pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A fragmented message being reassembled (rare: servers send whole frames).
    partial: Vec<u8>,
    partial_text: bool,
    /// Pongs to send for pings read.
    pongs: Vec<Vec<u8>>,
}

const READ_CHUNK: usize = 32 * 1024;

impl RawWs {
    /// TCP from `src`, then the upgrade request to `path_query`.
    pub async fn connect(src: IpAddr, addr: SocketAddr, path_query: &str) -> Result<Self, String> {
        let mut stream = tcp(src, addr).await.map_err(|e| format!("connect: {e}"))?;
        let req = format!(
            "GET {path_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut buf = vec![0u8; READ_CHUNK];
        let mut end = 0;
        let header_end = loop {
            if let Some(i) = buf[..end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if end == buf.len() {
                return Err("handshake response too long".into());
            }
            let n = stream
                .read(&mut buf[end..])
                .await
                .map_err(|e| format!("connect: {e}"))?;
            if n == 0 {
                return Err("connect: closed during the handshake".into());
            }
            end += n;
        };
        let status = String::from_utf8_lossy(&buf[..header_end.min(64)]).to_string();
        if !status.starts_with("HTTP/1.1 101") {
            return Err(format!(
                "protocol: handshake answered {:?}",
                status.lines().next()
            ));
        }
        Ok(Self {
            stream,
            buf,
            start: header_end,
            end,
            partial: Vec::new(),
            partial_text: false,
            pongs: Vec::new(),
        })
    }

    /// Call `f` for every complete message now readable (at least one read). Returns
    /// Ok(false) when the server closed the connection.
    pub async fn read_messages(
        &mut self,
        mut f: impl FnMut(Frame<'_>) -> bool,
    ) -> Result<bool, String> {
        // Parse what is buffered first (bytes left behind by the handshake or a
        // previous read), then read more.
        loop {
            match self.parse(&mut f)? {
                Parsed::Stop => return Ok(false),
                Parsed::Some => {
                    self.flush_pongs().await?;
                    return Ok(true);
                }
                Parsed::NeedMore => {}
            }
            if self.start > 0 && self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if self.buf.len() - self.end < READ_CHUNK / 4 {
                // Compact, or grow for a frame larger than the buffer.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() - self.end < READ_CHUNK / 4 {
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
    }

    fn parse(&mut self, f: &mut impl FnMut(Frame<'_>) -> bool) -> Result<Parsed, String> {
        let mut any = false;
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                break;
            }
            let (b0, b1) = (avail[0], avail[1]);
            if b1 & 0x80 != 0 {
                return Err("protocol: masked frame from the server".into());
            }
            let (len, hdr) = match b1 & 0x7f {
                126 if avail.len() >= 4 => (u16::from_be_bytes([avail[2], avail[3]]) as usize, 4),
                127 if avail.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if avail.len() < hdr + len {
                break;
            }
            let payload = &avail[hdr..hdr + len];
            let fin = b0 & 0x80 != 0;
            let opcode = b0 & 0x0f;
            let keep_going = match opcode {
                0x1 | 0x2 if fin => f(if opcode == 0x1 {
                    Frame::Text(payload)
                } else {
                    Frame::Binary
                }),
                0x1 | 0x2 => {
                    self.partial.clear();
                    self.partial.extend_from_slice(payload);
                    self.partial_text = opcode == 0x1;
                    true
                }
                0x0 => {
                    self.partial.extend_from_slice(payload);
                    if fin {
                        let whole = std::mem::take(&mut self.partial);
                        let go = f(if self.partial_text {
                            Frame::Text(&whole)
                        } else {
                            Frame::Binary
                        });
                        self.partial = whole;
                        self.partial.clear();
                        go
                    } else {
                        true
                    }
                }
                0x8 => {
                    f(Frame::Close);
                    false
                }
                0x9 => {
                    self.pongs.push(payload.to_vec());
                    true
                }
                0xA => true,
                op => return Err(format!("protocol: unknown opcode {op}")),
            };
            self.start += hdr + len;
            any = true;
            if !keep_going {
                return Ok(Parsed::Stop);
            }
        }
        Ok(if any { Parsed::Some } else { Parsed::NeedMore })
    }

    async fn flush_pongs(&mut self) -> Result<(), String> {
        for payload in std::mem::take(&mut self.pongs) {
            self.send(0xA, &payload).await?;
        }
        Ok(())
    }

    /// Send a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(0x1, text.as_bytes()).await
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        // The mask only has to be present; its value does not matter to the server.
        let mask = [0x5a, 0x13, 0xc7, 0x2e];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| e.to_string())
    }
}

enum Parsed {
    /// At least one message was handed over.
    Some,
    /// Nothing complete yet.
    NeedMore,
    /// The callback or a close frame ended the connection.
    Stop,
}
