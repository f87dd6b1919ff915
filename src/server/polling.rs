//! HTTP long-polling transport: GET waits for queued packets, POST carries client packets.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::app::ResponseBody;
use super::http::{text, EngineError, HttpResponse, RequestBody};
use crate::engine::{CloseReason, Engine, FrameData, Session};
use crate::protocol::engineio;

pub(crate) fn payload_response(body: String) -> HttpResponse {
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}

/// A long-poll: answer with queued packets as soon as there are any (at most
/// `max_polling_packets`; the rest wait for the next GET), or with NOOP when the session
/// upgrades, or CLOSE when it ends.
pub(crate) async fn get(engine: &Engine, session: Arc<Session>) -> HttpResponse {
    let Some(mut poll) = session.begin_poll() else {
        // Two concurrent GETs: the client is broken. Close the session; the pending GET
        // answers with CLOSE.
        session.close(CloseReason::ParseError);
        return EngineError::BadRequest.response();
    };
    let max = engine.config.max_polling_packets;
    let mut frames = VecDeque::new();
    loop {
        let closed = session.take_frames(&mut frames, max);
        if !frames.is_empty() || closed {
            let mut body = String::new();
            for frame in &frames {
                let frame = match &*frame.0 {
                    FrameData::Text(t) => engineio::Frame::Text(t),
                    FrameData::Binary(b) => engineio::Frame::Binary(b),
                };
                engineio::write_payload_frame(&mut body, frame);
            }
            if closed && frames.len() < max {
                // The client's own CLOSE ends its pending poll with NOOP (as the reference
                // server does); a close the server decides ends it with CLOSE, in an
                // answer of its own when this one carries frames (`Engine::owe_close`).
                if session.closed_by_client() {
                    // This GET was the one the CLOSE overtook (it found the session
                    // before the CLOSE removed it): a later GET is "unknown session".
                    engine.take_owed_final_packet(session.sid());
                    engineio::write_payload_frame(&mut body, engineio::Frame::Text("6"));
                } else if frames.is_empty() {
                    engineio::write_payload_frame(&mut body, engineio::Frame::Text("1"));
                } else {
                    engine.owe_close(session.sid_arc());
                }
            }
            engine.stats.record_write(frames.len(), body.len());
            poll.answered();
            return payload_response(body);
        }
        if session.poll_yields_to_upgrade() {
            // The client is switching to WebSocket: end this poll so it can send UPGRADE.
            poll.answered();
            return payload_response("6".to_string());
        }
        tokio::select! {
            _ = session.frames_ready() => {}
            _ = session.closed() => {}
        }
    }
}

/// How long a GET that finds the probe answered waits for the client's UPGRADE.
const UPGRADE_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// A GET that arrives once the probe was answered (`3probe`) may have overtaken the
/// client's UPGRADE, sent just before it on the WebSocket, another connection read by
/// another task. Give the UPGRADE up to 100 ms to land, so that a GET sent after it is
/// refused as the reference refuses it (which answers such a GET with its 100 ms NOOP
/// check, so a GET sent before the client read `3probe` waits no longer than there).
/// Real clients send no new GET once they have read `3probe`.
pub(crate) async fn let_upgrade_settle(session: &Session) {
    let until = tokio::time::Instant::now() + UPGRADE_SETTLE;
    while session.poll_yields_to_upgrade() && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Client packets. Answers `ok`; a body over `max_payload` gets 413 and is dropped, the
/// session going on; a malformed one gets 400 and closes the session (both as the
/// reference server, engine.io 6.6, does).
pub(crate) async fn post<B: RequestBody>(
    engine: &Engine,
    session: Arc<Session>,
    req: Request<B>,
) -> HttpResponse {
    let max = engine.config.max_payload;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
    }
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
        }
        // The connection broke mid-body ("data request connection closed prematurely").
        Err(_) => {
            session.close(CloseReason::TransportError);
            return EngineError::BadRequest.response();
        }
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        session.close(CloseReason::ParseError);
        return EngineError::BadRequest.response();
    };
    // One POST at a time per session, so packets reach the handler in order.
    let Some(_post) = session.begin_post() else {
        session.close(CloseReason::ParseError);
        return EngineError::BadRequest.response();
    };
    for packet in engineio::decode_payload(body) {
        let outcome = match packet {
            Ok(packet) => session.receive(packet),
            Err(_) => Err(CloseReason::ParseError),
        };
        if let Err(reason) = outcome {
            session.close(reason);
            return EngineError::BadRequest.response();
        }
        if session.is_closed() {
            break;
        }
    }
    let mut resp = text(StatusCode::OK, "ok");
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{
        ConnectionHandler, EngineConfig, EngineHandler, EngineSocket, Incoming, RequestInfo,
        Transport,
    };
    use http_body_util::BodyExt;

    struct Ignore;
    impl EngineHandler for Ignore {
        fn on_open(&self, _: EngineSocket, _: &RequestInfo) -> Arc<dyn ConnectionHandler> {
            Arc::new(Ignore)
        }
    }
    impl ConnectionHandler for Ignore {
        fn on_message(&self, _: Incoming<'_>) {}
        fn on_close(&self, _: CloseReason) {}
    }

    fn engine() -> Arc<Engine> {
        Engine::new(
            EngineConfig::default(),
            Arc::new(Ignore),
            tokio_util::task::TaskTracker::new(),
            Default::default(),
        )
    }

    /// A new polling session of `engine`.
    fn open(engine: &Arc<Engine>) -> Arc<Session> {
        let request = RequestInfo::new(None, String::new(), &hyper::HeaderMap::new());
        engine.open(Transport::Polling, &request).0
    }

    async fn body_text(resp: HttpResponse) -> String {
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes());
        String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap_or_default()
    }

    /// The interleaving behind a flaky "forcefully closes the session" conformance
    /// run: the GET found the session, then the client's CLOSE (on another connection)
    /// arrived before the GET began to wait. That GET ends with NOOP and uses up the
    /// grace, so the client's next GET is refused as an unknown session.
    #[tokio::test]
    async fn a_get_that_found_the_session_before_the_close_uses_up_the_grace() {
        let engine = engine();
        let session = open(&engine);
        let sid = session.sid().to_string();
        assert!(session.receive(engineio::Packet::Close).is_ok());
        assert_eq!(body_text(get(&engine, session).await).await, "6");
        assert_eq!(engine.take_owed_final_packet(&sid), None);
        assert!(engine.session(&sid).is_none());
    }

    /// A server close finds frames to send: they go first, in an answer without CLOSE,
    /// and the client's next GET gets the CLOSE (socket.io-client must see the events
    /// before the close, or its recovery offset lags behind them).
    #[tokio::test]
    async fn a_server_close_sends_the_queued_frames_first_and_close_on_the_next_get() {
        let engine = engine();
        let session = open(&engine);
        let sid = session.sid().to_string();
        let socket = EngineSocket::new(session.clone());
        socket
            .send_frames(&[crate::engine::Frame::text("42[\"last\"]")])
            .expect("queued");
        socket.close();
        assert_eq!(body_text(get(&engine, session).await).await, "42[\"last\"]");
        assert_eq!(engine.take_owed_final_packet(&sid), Some("1"));
        assert_eq!(engine.take_owed_final_packet(&sid), None, "once");

        // With nothing queued, CLOSE goes in the pending GET's answer, as before.
        let session = open(&engine);
        let sid = session.sid().to_string();
        EngineSocket::new(session.clone()).close();
        assert_eq!(body_text(get(&engine, session).await).await, "1");
        assert_eq!(engine.take_owed_final_packet(&sid), None);
    }
}
