// 9. The raw Engine.IO echo endpoint at /engine.io/, driven by engine.io-client:
// text and binary messages come back unchanged (same type) over WebSocket only,
// long-polling only, and long-polling upgraded to WebSocket.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket as EngineSocket } from "engine.io-client";
import { startServer, Clients, nextEvent, sleep, toBuffer, withTimeout } from "./harness.mjs";

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

/** Sends each message and collects as many answers, in order. */
async function roundTrip(socket, messages, ms = 8000) {
  const got = [];
  const onMessage = (data) => got.push(data);
  socket.on("message", onMessage);
  try {
    for (const m of messages) socket.send(m);
    const deadline = Date.now() + ms;
    while (got.length < messages.length && Date.now() < deadline) await sleep(10);
    assert.equal(got.length, messages.length, `got ${got.length} of ${messages.length} echoes`);
    await sleep(100);
    assert.equal(got.length, messages.length, "no extra messages");
  } finally {
    socket.off("message", onMessage);
  }
  messages.forEach((sent, i) => {
    const back = got[i];
    if (sent === "") {
      // engine.io-parser decodes the empty message packet "4" to `data: undefined`.
      assert.ok(back === "" || back === undefined, `message ${i}: empty text, got ${JSON.stringify(back)}`);
    } else if (typeof sent === "string") {
      assert.equal(typeof back, "string", `message ${i} comes back as text`);
      assert.equal(back, sent);
    } else {
      assert.ok(isBinary(back), `message ${i} comes back as binary, got ${typeof back}`);
      assert.ok(toBuffer(back).equals(toBuffer(sent)), `message ${i} bytes`);
    }
  });
}

const MESSAGES = [
  "hello",
  "",
  "unicode ✓ 🚀 ü",
  '42["looks like socket.io"]',
  Buffer.from([0, 1, 2, 255]),
  new Uint8Array([10, 20, 30]),
  "x".repeat(100_000),
  Buffer.alloc(100_000, 0xab),
];

describe("raw Engine.IO echo at /engine.io/", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  function open(opts) {
    const socket = new EngineSocket(server.url, { path: "/engine.io/", ...opts });
    clients.track(socket);
    return socket;
  }

  test("websocket only", { timeout: 15_000 }, async () => {
    const socket = open({ transports: ["websocket"] });
    await nextEvent(socket, "open", 5000);
    assert.equal(socket.transport.name, "websocket");
    await roundTrip(socket, MESSAGES);
  });

  test("polling only", { timeout: 15_000 }, async () => {
    const socket = open({ transports: ["polling"] });
    await nextEvent(socket, "open", 5000);
    assert.equal(socket.transport.name, "polling");
    await roundTrip(socket, MESSAGES);
    assert.equal(socket.transport.name, "polling");
  });

  test("polling upgraded to websocket", { timeout: 15_000 }, async () => {
    const socket = open({ transports: ["polling", "websocket"] });
    const upgraded = nextEvent(socket, "upgrade", 10_000);
    upgraded.catch(() => {});
    const handshake = nextEvent(socket, "handshake", 5000);
    await nextEvent(socket, "open", 5000);
    const [openData] = await handshake;
    assert.equal(socket.transport.name, "polling", "starts with long-polling");
    assert.deepEqual(openData.upgrades, ["websocket"], "the server offers the websocket upgrade");
    // Messages sent while the upgrade may be in progress.
    await roundTrip(socket, MESSAGES);
    if (socket.transport.name !== "websocket") await withTimeout(upgraded, 10_000, "upgrade");
    assert.equal(socket.transport.name, "websocket");
    await roundTrip(socket, MESSAGES);
  });

  test("the Socket.IO path does not echo raw messages", { timeout: 10_000 }, async () => {
    // A raw Engine.IO message on /socket.io/ is a (here invalid) Socket.IO packet,
    // never echoed: the two endpoints are separate.
    const socket = new EngineSocket(server.url, { path: "/socket.io/", transports: ["websocket"] });
    clients.track(socket);
    await nextEvent(socket, "open", 5000);
    const got = [];
    socket.on("message", (m) => got.push(m));
    socket.send("0"); // Socket.IO CONNECT to "/"
    await sleep(300);
    assert.equal(got.length, 1);
    assert.match(String(got[0]), /^0\{"sid":"[^"]+"\}$/);
  });
});
