// 10a. Bad input and protocol violations over raw HTTP (global fetch) on the
// long-polling transport. Every test also checks that a socket.io client connected
// before still works afterwards (echo). The server runs with --max-payload 1000.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, echo, request, pollingHandshake, splitPayload } from "./harness.mjs";

const PING_INTERVAL = 10_000;
const PING_TIMEOUT = 5_000;
const MAX_PAYLOAD = 1000;

async function assertJsonError(res, status, body) {
  assert.equal(res.status, status, `status, body: ${res.text}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(JSON.parse(res.text), body);
}

describe("protocol errors over HTTP long-polling", () => {
  let server;
  let witness;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, maxPayload: MAX_PAYLOAD });
    witness = await clients.connect(server.url, { transports: ["websocket"] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  async function assertWitnessAlive() {
    assert.ok(witness.connected, "the witness client is still connected");
    assert.deepEqual(await echo(witness, "witness", { ok: true }), ["witness", { ok: true }]);
  }

  test("EIO=3 -> 400 Unsupported protocol version", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=3&transport=polling`);
    await assertJsonError(res, 400, { code: 5, message: "Unsupported protocol version" });
    await assertWitnessAlive();
  });

  test("unknown transport -> 400 Transport unknown", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=foo`);
    await assertJsonError(res, 400, { code: 0, message: "Transport unknown" });
    await assertWitnessAlive();
  });

  test("unknown sid -> 400 Session ID unknown", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=polling&sid=nope`);
    await assertJsonError(res, 400, { code: 1, message: "Session ID unknown" });
    const post = await request(`${server.url}/socket.io/?EIO=4&transport=polling&sid=nope`, {
      method: "POST",
      body: "40",
      headers: { "content-type": "text/plain;charset=UTF-8" },
    });
    await assertJsonError(post, 400, { code: 1, message: "Session ID unknown" });
    await assertWitnessAlive();
  });

  test("POST without sid -> 400 Bad handshake method", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=polling`, {
      method: "POST",
      body: "40",
      headers: { "content-type": "text/plain;charset=UTF-8" },
    });
    await assertJsonError(res, 400, { code: 2, message: "Bad handshake method" });
    await assertWitnessAlive();
  });

  test("plain GET with transport=websocket (no upgrade) -> 400 Bad request", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=websocket`);
    await assertJsonError(res, 400, { code: 3, message: "Bad request" });
    await assertWitnessAlive();
  });

  test("polling handshake: the OPEN packet, then CONNECT via POST (answer ok)", { timeout: 10_000 }, async () => {
    const { open, res } = await pollingHandshake(server);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal(splitPayload(res.text).length, 1, "the handshake answer holds only the OPEN packet");
    assert.equal(typeof open.sid, "string");
    assert.ok(open.sid.length > 0);
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, MAX_PAYLOAD);

    const url = `${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(open.sid)}`;
    const post = await request(url, { method: "POST", body: "40", headers: { "content-type": "text/plain;charset=UTF-8" } });
    assert.equal(post.status, 200);
    assert.equal(post.text, "ok");
    const poll = await request(url);
    assert.equal(poll.status, 200);
    const packets = splitPayload(poll.text);
    assert.equal(packets.length, 1, poll.text);
    assert.match(packets[0], /^40\{"sid":"[^"]+"\}$/);
    assert.notEqual(JSON.parse(packets[0].slice(2)).sid, open.sid, "the Socket.IO id is not the Engine.IO sid");

    // An event over polling, and its echo on the next GET.
    const ev = await request(url, { method: "POST", body: '42["echo","over raw polling",1]' });
    assert.equal(ev.status, 200);
    assert.equal(ev.text, "ok");
    const echoed = await request(url);
    assert.deepEqual(splitPayload(echoed.text), ['42["echo","over raw polling",1]']);

    // Several packets in one POST body, separated by 0x1e.
    const multi = await request(url, { method: "POST", body: '42["echo",1]\x1e42["echo",2]' });
    assert.equal(multi.text, "ok");
    const got = [];
    for (let i = 0; i < 5 && got.length < 2; i++) got.push(...splitPayload((await request(url)).text));
    assert.deepEqual(got, ['42["echo",1]', '42["echo",2]']);

    // Close the session from the client side: "1".
    const close = await request(url, { method: "POST", body: "1" });
    assert.equal(close.status, 200);
    await assertWitnessAlive();
  });

  test("two concurrent GETs on one sid close the session", { timeout: 15_000 }, async (t) => {
    const { open } = await pollingHandshake(server);
    const url = `${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(open.sid)}`;
    // Nothing is queued (no CONNECT sent, next ping in 10 s): the first GET waits.
    const first = request(url, {}, 8000).then(
      (res) => ({ res }),
      (error) => ({ error }),
    );
    await new Promise((r) => setTimeout(r, 200));
    const second = await request(url);
    assert.equal(second.status, 400, "the overlapping GET is refused");
    const { res, error } = await first;
    t.diagnostic(`first GET: ${error ? `error ${error}` : `${res.status} ${JSON.stringify(res.text)}`}`);
    t.diagnostic(`second GET: ${second.status} ${JSON.stringify(second.text)}`);
    if (!error) {
      // The reference answers the pending GET with 200 and a CLOSE packet "1";
      // an error status is also a valid way to end it.
      const closedWithPacket = res.status === 200 && splitPayload(res.text).at(-1) === "1";
      assert.ok(closedWithPacket || res.status >= 400, `first GET: ${res.status} ${JSON.stringify(res.text)}`);
    }
    const later = await request(url);
    await assertJsonError(later, 400, { code: 1, message: "Session ID unknown" });
    await assertWitnessAlive();
  });

  test("POST body larger than maxPayload -> 413; the session is unaffected", { timeout: 10_000 }, async () => {
    const { open } = await pollingHandshake(server);
    const url = `${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(open.sid)}`;
    const big = await request(url, {
      method: "POST",
      body: `42["echo","${"x".repeat(2 * MAX_PAYLOAD)}"]`,
      headers: { "content-type": "text/plain;charset=UTF-8" },
    });
    assert.equal(big.status, 413);
    // The oversized body was dropped and the session goes on.
    const post = await request(url, { method: "POST", body: "40" });
    assert.equal(post.status, 200);
    assert.equal(post.text, "ok");
    const poll = await request(url);
    assert.equal(poll.status, 200);
    assert.match(splitPayload(poll.text)[0], /^40\{"sid":"[^"]+"\}$/, poll.text);
    // A body just under the limit is accepted.
    const fits = `42["echo","${"y".repeat(MAX_PAYLOAD - 20)}"]`;
    assert.ok(Buffer.byteLength(fits) <= MAX_PAYLOAD);
    const ok = await request(url, { method: "POST", body: fits });
    assert.equal(ok.status, 200);
    assert.deepEqual(splitPayload((await request(url)).text), [fits]);
    await request(url, { method: "POST", body: "1" });
    await assertWitnessAlive();
  });
});
