//! The host layer with real clients: connect gating, handler threads, acks, and a
//! stop / start / stop cycle of one server.

mod fixture;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixture::{config, WsClient};
use serde_json::json;
use swarmcast::{ConnectError, Host, HostState, Server};

/// The tests' clients run on a runtime of their own, beside the host's.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_server_serves_clients_across_a_restart() {
    let rt = client_runtime();
    let server = Server::new(config());
    let agents = server.state("agents");
    let host = Host::new(server, 2);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));

    let l = log.clone();
    host.on_connect("/", move |socket| {
        l.lock().unwrap().push(format!("connect {}", socket.id()));
        match socket.auth() {
            Some(auth) if auth["token"] == "ok" => Ok(()),
            _ => Err(ConnectError::new("unauthorized")),
        }
    })
    .expect("connect handler");
    let l = log.clone();
    host.on_disconnect("/", move |socket, reason| {
        l.lock()
            .unwrap()
            .push(format!("disconnect {} {}", socket.id(), reason.as_str()));
    })
    .expect("disconnect handler");
    let l = log.clone();
    host.on("/", "ping", move |socket, event, ack| {
        assert!(
            std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("swarmcast-handler")),
            "handlers run on the dispatcher"
        );
        l.lock().unwrap().push(format!("ping {}", socket.id()));
        if let Some(ack) = ack {
            let _ = ack.send(&event.payload.args);
        }
    })
    .expect("event handler");

    agents.set("a1", &json!({"status": "idle"})).expect("set");
    for round in 0..2 {
        let addr = host.start().expect("starts");
        assert_eq!(host.state(), HostState::Running);
        // The clients live until after the stop: its disconnects are the server's.
        let (sid, _clients) = rt.block_on(async {
            // Refused: no disconnect callback will follow.
            let mut refused = WsClient::open(addr, "/socket.io").await;
            let err = refused.connect_ns("/", None).await.expect_err("refused");
            assert_eq!(err["message"], "unauthorized");

            let mut client = WsClient::open(addr, "/socket.io").await;
            let sid = client
                .connect_ns("/", Some(json!({"token": "ok"})))
                .await
                .expect("accepted");
            client.send(&format!("421[\"ping\",{round}]")).await;
            let ack = client.recv_text().await.expect("ack");
            assert_eq!(ack, format!("431[[{round}]]"));
            host.emitter()
                .emit("news", &json!({"round": round}))
                .expect("emit");
            let (name, args) = client.recv_event().await.expect("event");
            assert_eq!(
                (name.as_str(), args),
                ("news", vec![json!({"round": round})])
            );
            (sid, (client, refused))
        });
        host.stop().expect("stops");
        assert_eq!(host.state(), HostState::Stopped);
        // Stop waits for the handler threads: the disconnect has run by now.
        let entries = log.lock().unwrap().clone();
        let mine: Vec<&String> = entries.iter().filter(|e| e.contains(&sid)).collect();
        assert_eq!(
            mine,
            vec![
                &format!("connect {sid}"),
                &format!("ping {sid}"),
                &format!("disconnect {sid} server shutting down"),
            ],
            "round {round}: {entries:?}"
        );
        let disconnects = entries
            .iter()
            .filter(|e| e.starts_with("disconnect"))
            .count();
        assert_eq!(disconnects, round + 1, "only accepted sockets: {entries:?}");
        assert_eq!(
            agents.get("a1"),
            Some(json!({"status": "idle"})),
            "state maps survive"
        );
    }
}

#[test]
fn ack_callbacks_run_on_the_sockets_handler_thread() {
    let rt = client_runtime();
    let host = Host::new(Server::new(config()), 2);
    let addr = host.start().expect("starts");
    let got = Arc::new(Mutex::new(None));
    rt.block_on(async {
        let (mut client, sid) = WsClient::connect(addr).await;
        let socket = host.emitter().socket("/", &sid).expect("connected");
        let g = got.clone();
        let h = host.clone();
        host.emit_with_ack(
            &socket,
            "question",
            &swarmcast::Payload::new(vec![json!(1)]),
            Duration::from_secs(5),
            move |answer| {
                *g.lock().unwrap() = Some((h.in_handler(), answer.ok().map(|p| p.args)));
            },
        );
        let text = client.recv_text().await.expect("event with ack id");
        assert!(text.starts_with("420[\"question\""), "{text}");
        client.send("430[42]").await;
    });
    wait_until("the ack callback", || got.lock().unwrap().is_some());
    assert_eq!(
        got.lock().unwrap().take(),
        Some((true, Some(vec![json!(42)])))
    );
    host.stop().expect("stops");
}

#[test]
fn a_handlers_answer_does_not_overtake_the_emits_it_handed_off() {
    // A handler that emits through the host's handoff and then answers: its client
    // gets the events first, as it would had the handler emitted on its own thread.
    let rt = client_runtime();
    let host = Host::new(Server::new(config()), 2);
    host.enable_handoff().expect("handoff thread");
    let h = host.clone();
    host.on("/", "work", move |socket, _event, ack| {
        let handoff = h.handoff().expect("enabled");
        for i in 0..500 {
            let to = h.emitter().of("/").to(socket.id());
            handoff.emit(to, "n", &i).expect("handed off");
        }
        if let Some(ack) = ack {
            ack.send(&"done").expect("answered");
        }
    })
    .expect("event handler");
    let addr = host.start().expect("starts");
    rt.block_on(async {
        let (mut client, _sid) = WsClient::connect(addr).await;
        client.send("427[\"work\"]").await;
        let mut got = Vec::new();
        loop {
            let text = client.recv_text().await.expect("a packet");
            if text.starts_with("437") {
                assert_eq!(text, "437[\"done\"]");
                break;
            }
            got.push(text);
        }
        let expected: Vec<String> = (0..500).map(|i| format!("42[\"n\",{i}]")).collect();
        assert_eq!(got, expected, "every event before the answer");
    });
    host.stop().expect("stops");
}
