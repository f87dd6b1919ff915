// 6. An event emitted from a separate OS thread of the server (`thread_burst`)
// reaches the client. 7. Fan-out: 200 WebSocket clients each receive a burst of
// 50 events exactly once and in order.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, record, sleep, waitUntil, withTimeout } from "./harness.mjs";

const seqs = (n) => Array.from({ length: n }, (_, i) => ({ seq: i }));

describe("thread_burst: one event from another thread", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const transport of ["websocket", "polling"]) {
    test(`count 1 reaches the client (${transport})`, { timeout: 10_000 }, async () => {
      const socket = await clients.connect(server.url, { transports: [transport] });
      const got = record(socket, "from_thread");
      assert.deepEqual(await emitAck(socket, "thread_burst", { count: 1, event: "from_thread" }), [true]);
      await waitUntil(() => got.length >= 1, 5000, "from_thread");
      await sleep(200);
      assert.deepEqual(got, [[{ seq: 0 }]]);
      got.stop();
    });
  }

  test("reaches every namespace member, and only that namespace", { timeout: 10_000 }, async () => {
    const chat1 = await clients.connect(`${server.url}/chat`, { transports: ["websocket"] });
    const chat2 = await clients.connect(`${server.url}/chat`, { transports: ["polling"] });
    const root = await clients.connect(server.url, { transports: ["websocket"] });
    const g1 = record(chat1, "chat_burst");
    const g2 = record(chat2, "chat_burst");
    const gr = record(root, "chat_burst");
    // Without an ack request.
    chat1.emit("thread_burst", { count: 5, event: "chat_burst" });
    await waitUntil(() => g1.length >= 5 && g2.length >= 5, 5000, "chat_burst at both /chat sockets");
    await sleep(200);
    assert.deepEqual(g1.map((a) => a[0]), seqs(5));
    assert.deepEqual(g2.map((a) => a[0]), seqs(5));
    assert.deepEqual(gr, []);
  });
});

describe("thread_burst: 200 clients x 50 events", () => {
  const N_CLIENTS = 200;
  const COUNT = 50;
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("every client receives seq 0..49 exactly once and in order", { timeout: 60_000 }, async (t) => {
    const t0 = Date.now();
    const sockets = [];
    // Connect in batches so that the handshake burst stays moderate.
    for (let i = 0; i < N_CLIENTS; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(N_CLIENTS, i + 50); j++) {
        batch.push(clients.connect(server.url, { transports: ["websocket"] }, 20_000));
      }
      sockets.push(...(await withTimeout(Promise.all(batch), 25_000, `clients ${i}..${i + 49} connected`)));
    }
    const tConnected = Date.now();
    const [count] = await emitAck(sockets[0], "count_sockets");
    assert.equal(count, N_CLIENTS);

    const received = sockets.map((s) => record(s, "burst"));
    const disconnects = [];
    sockets.forEach((s, i) => s.on("disconnect", (reason) => disconnects.push([i, reason])));
    assert.deepEqual(await emitAck(sockets[0], "thread_burst", { count: COUNT, event: "burst" }), [true]);
    await waitUntil(
      () => received.every((g) => g.length >= COUNT),
      30_000,
      `every client to receive ${COUNT} events`,
    ).catch((err) => {
      const short = received.map((g, i) => [i, g.length]).filter(([, n]) => n < COUNT);
      throw new Error(`${err.message}; ${short.length} clients short, first: ${JSON.stringify(short.slice(0, 5))}`);
    });
    const tDelivered = Date.now();
    await sleep(300);
    const expected = seqs(COUNT);
    received.forEach((g, i) => {
      assert.deepEqual(g.map((args) => args[0]), expected, `client ${i}`);
      assert.ok(g.every((args) => args.length === 1), `client ${i}: one argument per event`);
    });
    assert.deepEqual(disconnects, []);
    t.diagnostic(`connect ${tConnected - t0} ms, deliver ${tDelivered - tConnected} ms`);
  });
});
