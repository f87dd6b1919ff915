// 5. Binary both ways, over WebSocket (binary frames) and long-polling (base64
// "b" packets): Buffers nested in objects and arrays via `echo`, the server's
// `binary` event, and binary in acks in both directions.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, echo, nextEvent, normalize, toBuffer } from "./harness.mjs";

function bytes(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe("binary", () => {
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
    describe(transport, () => {
      let socket;
      before(async () => {
        socket = await clients.connect(server.url, { transports: [transport] });
        assert.equal(socket.io.engine.transport.name, transport);
      });

      test("echo of a top-level Buffer", { timeout: 10_000 }, async () => {
        const got = await echo(socket, ALL_BYTES);
        assert.equal(got.length, 1);
        assert.ok(toBuffer(got[0]).equals(ALL_BYTES));
      });

      test("echo of Buffers nested in objects and arrays", { timeout: 10_000 }, async () => {
        const args = [
          "text first",
          { a: Buffer.from("abc"), list: [Buffer.from([0]), 7, { deeper: [Buffer.from([255, 254])] }] },
          [[ALL_BYTES], { x: null, y: Buffer.from("ünïcödé") }],
          bytes(64 * 1024, 7),
          42,
        ];
        const got = await echo(socket, ...args);
        assert.deepEqual(normalize(got), normalize(args));
      });

      test("echo of an empty Buffer", { timeout: 10_000 }, async () => {
        const got = await echo(socket, { empty: Buffer.alloc(0) }, Buffer.alloc(0));
        assert.deepEqual(normalize(got), normalize([{ empty: Buffer.alloc(0) }, Buffer.alloc(0)]));
      });

      test("several binary events in a row keep their order and attachments", { timeout: 10_000 }, async () => {
        const got = [];
        const onEcho = (...args) => got.push(args);
        socket.on("echo", onEcho);
        try {
          const sent = Array.from({ length: 20 }, (_, i) => [i, bytes(100 + i, i), { b: bytes(i, 99 + i) }]);
          for (const args of sent) socket.emit("echo", ...args);
          const deadline = Date.now() + 8000;
          while (got.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          assert.deepEqual(normalize(got), normalize(sent));
        } finally {
          socket.off("echo", onEcho);
        }
      });

      test("server `binary` event and binary ack", { timeout: 10_000 }, async () => {
        const event = nextEvent(socket, "binary", 5000);
        const ack = await emitAck(socket, "binary");
        const args = await event;
        assert.deepEqual(normalize(args), normalize([Buffer.from([1, 2, 3, 255]), { nested: Buffer.from("hello") }]));
        assert.deepEqual(normalize(ack), normalize([Buffer.from([9, 8, 7])]));
      });

      test("binary in client -> server acks", { timeout: 10_000 }, async () => {
        const args = [Buffer.from([1, 2]), { b: Buffer.from("ack me"), n: [Buffer.from([0, 0, 0])] }];
        assert.deepEqual(normalize(await emitAck(socket, "ack", ...args)), normalize(args));
      });

      test("binary in server -> client acks", { timeout: 10_000 }, async () => {
        const onAsk = (data, cb) => cb({ back: Buffer.from([7, 7, 7]), data });
        socket.on("server_ack", onAsk);
        try {
          const result = nextEvent(socket, "server_ack_result", 5000);
          socket.emit("request_ack", { data: { payload: Buffer.from([5, 6]) }, timeout_ms: 3000 });
          const [res] = await result;
          assert.deepEqual(
            normalize(res),
            normalize({ ok: true, value: { back: Buffer.from([7, 7, 7]), data: { payload: Buffer.from([5, 6]) } } }),
          );
        } finally {
          socket.off("server_ack", onAsk);
        }
      });
    });
  }
});
