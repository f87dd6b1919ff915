//! The host lifecycle without clients (tests/host.rs drives one with clients).

use super::*;
use crate::ServerConfig;

fn server(port: u16) -> Server {
    Server::new(ServerConfig {
        port,
        ..ServerConfig::default()
    })
}

#[test]
fn starts_stops_and_starts_again_keeping_its_state() {
    let host = Host::new(server(0), 2);
    assert_eq!(host.state(), HostState::Created);
    assert!(host.local_addr().is_none());
    host.emitter()
        .namespace("/")
        .expect("/ is declared")
        .state("agents")
        .set("a1", &"idle")
        .expect("set before the start");
    for round in 0..3 {
        let addr = host.start().expect("starts");
        assert!(host.is_running(), "round {round}");
        assert_eq!(host.local_addr(), Some(addr));
        assert!(matches!(host.start(), Err(HostError::AlreadyRunning)));
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(host.run("k", move || tx.send(()).expect("send")));
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("jobs run while running");
        host.stop().expect("stops");
        assert_eq!(host.state(), HostState::Stopped);
        assert!(matches!(host.stop(), Err(HostError::NotRunning)));
        assert!(!host.run("k", || {}), "no handler threads once stopped");
        let ns = host.namespace("/").expect("kept");
        assert_eq!(ns.state("agents").get("a1"), Some("idle".into()));
    }
}

#[test]
fn a_failed_start_can_be_retried() {
    let first = Host::new(server(0), 1);
    let addr = first.start().expect("starts");
    let second = Host::new(server(addr.port()), 1);
    assert!(matches!(
        second.start(),
        Err(HostError::Server(ServerError::Bind { .. }))
    ));
    assert_eq!(second.state(), HostState::Stopped);
    first.stop().expect("stops");
    second.start().expect("the port is free now");
    second.stop().expect("stops");
}

#[test]
fn namespaces_are_declared_while_not_running_only() {
    let host = Host::new(server(0), 1);
    host.on("/chat", "x", |_, _, _| {})
        .expect("declared before the start");
    host.start().expect("starts");
    host.on("/chat", "y", |_, _, _| {})
        .expect("a declared one takes handlers");
    assert!(matches!(
        host.on_disconnect("/other", |_, _| {}),
        Err(HostError::Undeclared(_))
    ));
    host.stop().expect("stops");
    host.on_connect("/other", |_| Ok(()))
        .expect("declared while stopped");
}

#[test]
fn handlers_know_they_are_handlers() {
    let host = Host::new(server(0), 1);
    host.start().expect("starts");
    assert!(!host.in_handler());
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = host.clone();
    host.run("k", move || tx.send(inner.in_handler()).expect("send"));
    assert!(rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("ran"));
    host.stop().expect("stops");
}

#[test]
fn reserved_events() {
    for name in ["connect", "connect_error", "disconnect", "disconnecting"] {
        assert!(is_reserved_event(name), "{name}");
    }
    assert!(!is_reserved_event("message"));
}
