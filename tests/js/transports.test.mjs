// 1. The three ways socket.io-client reaches the server: WebSocket only,
// long-polling only, and long-polling upgraded to WebSocket. Each connects,
// echoes and gets acks. Also GET /healthz.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, nextEvent, emitAck, echo, request } from "./harness.mjs";

const PAYLOAD = ["hello", 42, { a: [1, { b: null }], unicode: "héllo ✓ 🚀" }, [true, false], -0.5];

async function checkEchoAndAcks(socket) {
  assert.deepEqual(await echo(socket, ...PAYLOAD), PAYLOAD);
  assert.deepEqual(await emitAck(socket, "ack", 1, "a", { x: [1, 2] }), [1, "a", { x: [1, 2] }]);
  // emitWithAck resolves to the first ack argument only.
  assert.equal(await socket.timeout(5000).emitWithAck("ack", 1, "a"), 1);
}

describe("transports", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("GET /healthz answers 200 ok", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(res.text, "ok");
  });

  test("websocket only", { timeout: 15_000 }, async () => {
    const socket = await clients.connect(server.url, { transports: ["websocket"] });
    assert.equal(socket.io.engine.transport.name, "websocket");
    await checkEchoAndAcks(socket);
    assert.equal(socket.io.engine.transport.name, "websocket");
  });

  test("polling only", { timeout: 15_000 }, async () => {
    const socket = await clients.connect(server.url, { transports: ["polling"] });
    assert.equal(socket.io.engine.transport.name, "polling");
    await checkEchoAndAcks(socket);
    // A burst of echoes in flight at once exercises several packets per poll response.
    const got = [];
    socket.on("echo", (n) => got.push(n));
    for (let i = 0; i < 40; i++) socket.emit("echo", i);
    const deadline = Date.now() + 10_000;
    while (got.length < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => i));
    assert.equal(socket.io.engine.transport.name, "polling");
  });

  test("polling upgraded to websocket", { timeout: 15_000 }, async () => {
    const socket = clients.socket(server.url);
    const engine = socket.io.engine;
    assert.equal(engine.transport.name, "polling", "the default client starts with long-polling");
    const upgraded = nextEvent(engine, "upgrade", 10_000);
    upgraded.catch(() => {});
    await nextEvent(socket, "connect", 10_000);
    // Traffic while the upgrade may still be in progress.
    await checkEchoAndAcks(socket);
    if (engine.transport.name !== "websocket") await upgraded;
    assert.equal(socket.io.engine.transport.name, "websocket");
    await checkEchoAndAcks(socket);
  });
});
