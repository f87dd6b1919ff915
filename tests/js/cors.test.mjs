// 11. CORS on the long-polling transport (any origin, with credentials: the
// Origin is reflected), the preflight, a WebSocket with an Origin header, and the
// default handshake values of a server started without options.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, echo, pollingHandshake, rawSocketIo, rawWebSocket, request, parseOpen } from "./harness.mjs";

const ORIGIN = "http://example.test";

function assertCorsHeaders(headers, origin = ORIGIN) {
  assert.equal(headers.get("access-control-allow-origin"), origin);
  assert.equal(headers.get("access-control-allow-credentials"), "true");
}

describe("CORS and defaults", () => {
  let server;
  let witness;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
    witness = await clients.connect(server.url, { transports: ["websocket"] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("polling GET and POST reflect the Origin with credentials", { timeout: 10_000 }, async () => {
    const { open, res } = await pollingHandshake(server, "/socket.io/", { Origin: ORIGIN });
    assertCorsHeaders(res.headers);
    const url = `${server.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(open.sid)}`;
    const post = await request(url, {
      method: "POST",
      body: "40",
      headers: { Origin: ORIGIN, "content-type": "text/plain;charset=UTF-8" },
    });
    assert.equal(post.status, 200);
    assert.equal(post.text, "ok");
    assertCorsHeaders(post.headers);
    const poll = await request(url, { headers: { Origin: "http://other.test:8080" } });
    assert.equal(poll.status, 200);
    assertCorsHeaders(poll.headers, "http://other.test:8080");
    await request(url, { method: "POST", body: "1", headers: { Origin: ORIGIN } });
  });

  test("OPTIONS preflight -> 204 with the allow headers", { timeout: 10_000 }, async () => {
    const res = await request(`${server.url}/socket.io/?EIO=4&transport=polling`, {
      method: "OPTIONS",
      headers: {
        Origin: ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
    });
    assert.equal(res.status, 204);
    assertCorsHeaders(res.headers);
    const methods = (res.headers.get("access-control-allow-methods") ?? "").toUpperCase().split(/\s*,\s*/);
    assert.ok(methods.includes("GET") && methods.includes("POST"), `allow-methods: ${methods}`);
    const allowHeaders = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    assert.ok(allowHeaders.split(/\s*,\s*/).includes("content-type"), `allow-headers: ${allowHeaders}`);
    assert.deepEqual(await echo(witness, "after preflight"), ["after preflight"]);
  });

  test("a WebSocket with an Origin header is accepted", { timeout: 10_000 }, async () => {
    const conn = rawWebSocket(`${server.wsUrl}/socket.io/?EIO=4&transport=websocket`, clients, { origin: ORIGIN });
    await conn.opened;
    const open = parseOpen(await conn.next());
    assert.deepEqual(open.upgrades, []);
    conn.send("40");
    assert.match(await conn.next(), /^40\{"sid":"[^"]+"\}$/);
    conn.ws.close();
  });

  test("a server started without options uses the Engine.IO defaults", { timeout: 10_000 }, async () => {
    const { open } = await pollingHandshake(server);
    assert.equal(open.pingInterval, 25000);
    assert.equal(open.pingTimeout, 20000);
    assert.equal(open.maxPayload, 1000000);
    const { open: eioOpen } = await pollingHandshake(server, "/engine.io/", { Origin: ORIGIN });
    assert.deepEqual(eioOpen.upgrades, ["websocket"]);
    const conn = await rawSocketIo(server, clients);
    assert.deepEqual(conn.open.upgrades, [], "nothing to upgrade to from websocket");
    assert.equal(conn.open.pingInterval, 25000);
  });
});
