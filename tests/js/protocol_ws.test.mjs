// 10b. Bad input and protocol violations over raw WebSockets (the `ws` package):
// oversized messages, malformed Socket.IO packets, a client that never answers
// pings, and one that never sends CONNECT. Each checks that the server closes the
// offending connection and that a socket.io client connected before still works.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, echo, rawWebSocket, rawSocketIo, sleep, withTimeout } from "./harness.mjs";

const MAX_PAYLOAD = 1000;

function witnessCheck(getWitness) {
  return async () => {
    const witness = getWitness();
    assert.ok(witness.connected, "the witness client is still connected");
    assert.deepEqual(await echo(witness, "witness", [1, 2]), ["witness", [1, 2]]);
  };
}

describe("bad input over WebSocket (--max-payload 1000)", () => {
  let server;
  let witness;
  const clients = new Clients();
  const assertWitnessAlive = witnessCheck(() => witness);
  before(async () => {
    server = await startServer({ maxPayload: MAX_PAYLOAD });
    witness = await clients.connect(server.url, { transports: ["websocket"] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("a message just under maxPayload is accepted", { timeout: 10_000 }, async () => {
    const conn = await rawSocketIo(server, clients);
    const msg = `42["echo","${"z".repeat(MAX_PAYLOAD - 20)}"]`;
    assert.ok(Buffer.byteLength(msg) <= MAX_PAYLOAD);
    conn.send(msg);
    assert.equal(await conn.next(), msg);
    conn.ws.close();
    await assertWitnessAlive();
  });

  test("a message larger than maxPayload closes the connection", { timeout: 10_000 }, async (t) => {
    const conn = await rawSocketIo(server, clients);
    const other = await rawSocketIo(server, clients);
    conn.send(`42["echo","${"z".repeat(2 * MAX_PAYLOAD)}"]`);
    const closed = await withTimeout(conn.closed, 3000, "the server to close the connection");
    // The Rust server closes with 1009 (message too big); the reference does too.
    t.diagnostic(`close code ${closed.code} reason ${JSON.stringify(closed.reason)}`);
    // The other raw connection is unaffected.
    other.send('42["echo","other"]');
    assert.equal(await other.next(), '42["echo","other"]');
    await assertWitnessAlive();
  });

  for (const [label, packet] of [
    ["bad JSON", '42["a"'],
    ["an unknown Socket.IO packet type", "4x"],
    ["an unknown Engine.IO packet type", "99"],
    ["an EVENT whose payload is not an array", '42{"a":1}'],
  ]) {
    test(`${label} (${packet}) closes the connection`, { timeout: 10_000 }, async (t) => {
      const conn = await rawSocketIo(server, clients);
      const other = await rawSocketIo(server, clients);
      const t0 = Date.now();
      conn.send(packet);
      const closed = await withTimeout(conn.closed, 3000, "the server to close the connection");
      t.diagnostic(`closed after ${closed.at - t0} ms with code ${closed.code}`);
      other.send('42["echo","other"]');
      assert.equal(await other.next(), '42["echo","other"]');
      await assertWitnessAlive();
    });
  }

  test("an upgrade for an unknown sid is refused", { timeout: 10_000 }, async () => {
    const conn = rawWebSocket(`${server.wsUrl}/socket.io/?EIO=4&transport=websocket&sid=nope`, clients);
    await assert.rejects(conn.opened);
    await withTimeout(conn.closed, 3000, "close");
    await assertWitnessAlive();
  });
});

describe("a client that never answers pings (--ping-interval 300 --ping-timeout 200)", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ pingInterval: 300, pingTimeout: 200 });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("is closed by the server; a socket.io client stays connected", { timeout: 15_000 }, async (t) => {
    const witness = await clients.connect(server.url, { transports: ["websocket"] });
    const disconnects = [];
    witness.on("disconnect", (reason) => disconnects.push(reason));

    const t0 = Date.now();
    const conn = await rawSocketIo(server, clients);
    // From here on pings ("2") are read but never answered.
    const pings = [];
    const reader = (async () => {
      for (let i = 0; i < 20; i++) pings.push(await conn.next(2000));
    })().catch(() => {});
    const closed = await withTimeout(conn.closed, 3000, "the server to close the silent client");
    const elapsed = closed.at - t0;
    await reader;
    t.diagnostic(`silent client closed after ${elapsed} ms, code ${closed.code}, pings seen ${JSON.stringify(pings)}`);
    assert.ok(pings.includes("2"), "the server pinged before giving up");
    assert.ok(elapsed <= 1500, `closed after ${elapsed} ms, expected <= 1500`);

    // The real client answers pings: still connected 2 s later.
    const remaining = 2000 - (Date.now() - t0);
    if (remaining > 0) await sleep(remaining);
    assert.deepEqual(disconnects, []);
    assert.ok(witness.connected);
    assert.deepEqual(await echo(witness, "alive after 2 s"), ["alive after 2 s"]);
  });

  test("a socket.io client over polling also stays connected", { timeout: 15_000 }, async () => {
    const witness = await clients.connect(server.url, { transports: ["polling"] });
    const disconnects = [];
    witness.on("disconnect", (reason) => disconnects.push(reason));
    await sleep(2000);
    assert.deepEqual(disconnects, []);
    assert.deepEqual(await echo(witness, "polling alive"), ["polling alive"]);
  });
});

describe("a client that never sends CONNECT (--connect-timeout 500)", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ connectTimeout: 500 });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("is closed by the server; a connected client stays", { timeout: 15_000 }, async (t) => {
    const witness = await clients.connect(server.url, { transports: ["websocket"] });
    const disconnects = [];
    witness.on("disconnect", (reason) => disconnects.push(reason));
    const t0 = Date.now();
    const conn = await rawSocketIo(server, clients, { connect: false });
    const closed = await withTimeout(conn.closed, 4000, "the server to close the client without CONNECT");
    const elapsed = closed.at - t0;
    t.diagnostic(`closed after ${elapsed} ms, code ${closed.code}`);
    assert.ok(elapsed <= 2000, `closed after ${elapsed} ms, expected <= 2000`);
    await sleep(Math.max(0, 1000 - (Date.now() - t0)));
    assert.deepEqual(disconnects, []);
    assert.deepEqual(await echo(witness, "connected in time"), ["connected in time"]);
  });

  test("a polling session without CONNECT is closed too", { timeout: 15_000 }, async () => {
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    const sid = JSON.parse(body.slice(1)).sid;
    const url = `${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
    // The pending GET is ended when the session closes (close packet or error).
    const first = await fetch(url, { signal: AbortSignal.timeout(4000) }).then(
      async (r) => ({ status: r.status, text: await r.text() }),
      (error) => ({ error }),
    );
    assert.ok(!first.error, `pending GET failed: ${first.error}`);
    // The reference answers 200 with the CLOSE packet "1"; an error status is also accepted.
    const closedWithPacket = first.status === 200 && first.text.split("\x1e").at(-1) === "1";
    assert.ok(closedWithPacket || first.status >= 400, `pending GET: ${first.status} ${JSON.stringify(first.text)}`);
    const later = await fetch(url, { signal: AbortSignal.timeout(4000) });
    assert.equal(later.status, 400);
    assert.deepEqual(await later.json(), { code: 1, message: "Session ID unknown" });
  });

  test("a socket.io client connecting normally is not affected", { timeout: 10_000 }, async () => {
    const socket = await clients.connect(server.url, { transports: ["polling"] });
    await sleep(1000);
    assert.ok(socket.connected);
    assert.deepEqual(await echo(socket, "fine"), ["fine"]);
  });
});
