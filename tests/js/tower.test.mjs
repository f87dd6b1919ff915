// swarmcast mounted in an axum application (examples/rust/axum_app.rs, feature
// `tower`): the official socket.io-client connects on the app's own port over
// WebSocket, long-polling and the upgrade, and the app's routes still answer,
// including one that pushes to every connected client.
//
// Runs with the Rust server under test only (the reference server has no axum app).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Clients, emitAck, nextEvent, request, startServer, waitUntil } from "./harness.mjs";

const rustServer = !!process.env.SWARMCAST_TEST_SERVER;
const AXUM_APP = "target/debug/examples/axum_app";

const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
  upgrade: {},
};

describe("swarmcast inside an axum app (tower layer)", { skip: !rustServer && "Rust server only" }, () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ command: AXUM_APP });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("the app's own routes answer on the port", async () => {
    const index = await request(`${server.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.text, /swarmcast inside axum/);
    const agents = await request(`${server.url}/agents`);
    assert.equal(agents.status, 200);
    assert.equal(agents.headers.get("content-type"), "application/json");
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    test(`socket.io-client connects and gets acks and pushes (${mode})`, async () => {
      const socket = await clients.connect(server.url, opts);
      if (mode === "upgrade") {
        await waitUntil(() => socket.io.engine?.transport?.name === "websocket", 10_000, "upgrade");
      }
      assert.equal(socket.io.engine.transport.name, mode === "polling" ? "polling" : "websocket");
      assert.deepEqual(await emitAck(socket, "echo", { mode }, 42), [{ mode }, 42]);

      // An app route pushes through the layer's emitter.
      const pushed = nextEvent(socket, "agent_state");
      const set = await request(`${server.url}/agents/a-${mode}`, { method: "POST", body: "busy" });
      assert.equal(set.status, 200);
      assert.ok(JSON.parse(set.text).delivered >= 1, set.text);
      assert.deepEqual(await pushed, [{ id: `a-${mode}`, state: "busy" }]);
      socket.disconnect();
    });
  }
});
