// 4. Acknowledgements both ways: client -> server with several arguments, and
// server -> client (`request_ack`), answered or left to time out.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, nextEvent, record, sleep } from "./harness.mjs";

describe("acks", () => {
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
      });

      test("client -> server ack with several arguments", { timeout: 10_000 }, async () => {
        const args = [1, "a", { nested: [true, null, { deep: "x" }] }, [1, 2, 3], 3.5, false];
        assert.deepEqual(await emitAck(socket, "ack", ...args), args);
        assert.deepEqual(await emitAck(socket, "ack"), [], "an ack with no arguments");
        assert.equal(await socket.timeout(5000).emitWithAck("ack", 1, "a"), 1);
      });

      test("many acks in flight resolve to their own answers", { timeout: 15_000 }, async () => {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => emitAck(socket, "ack", i, `n${i}`)));
        answers.forEach((got, i) => assert.deepEqual(got, [i, `n${i}`]));
      });

      test("server -> client ack answered", { timeout: 10_000 }, async () => {
        const onAsk = (data, cb) => cb({ got: data }, "ignored second arg");
        socket.on("server_ack", onAsk);
        try {
          const result = nextEvent(socket, "server_ack_result", 5000);
          socket.emit("request_ack", { data: { q: [1, 2] }, timeout_ms: 3000 });
          const [res] = await result;
          assert.deepEqual(res, { ok: true, value: { got: { q: [1, 2] } } });
        } finally {
          socket.off("server_ack", onAsk);
        }
      });

      test("server -> client ack times out when the client does not answer", { timeout: 10_000 }, async () => {
        let pending = null;
        const asked = [];
        const onAsk = (data, cb) => {
          asked.push(data);
          pending = cb;
        };
        socket.on("server_ack", onAsk);
        const results = record(socket, "server_ack_result");
        try {
          const t0 = Date.now();
          const result = nextEvent(socket, "server_ack_result", 5000);
          socket.emit("request_ack", { data: "are you there", timeout_ms: 300 });
          const [res] = await result;
          const elapsed = Date.now() - t0;
          assert.deepEqual(res, { ok: false, error: "timeout" });
          assert.deepEqual(asked, ["are you there"], "the client was asked, with the data");
          assert.ok(elapsed >= 250, `timed out after ${elapsed} ms, before the 300 ms timeout`);
          // A late answer is ignored: no second result.
          pending?.("too late");
          await sleep(400);
          assert.equal(results.length, 1, `results: ${JSON.stringify(results)}`);
        } finally {
          socket.off("server_ack", onAsk);
          results.stop();
        }
      });
    });
  }
});
