// Interop regressions with the official socket.io-client 4.8 over each way it reaches
// the server (websocket only, polling only, polling upgraded to websocket, and
// reconnection with connection state recovery): a burst of 10,000 small events emitted
// by the server at once (all arrive, in order) and a forced transport drop (the client
// reconnects; with recovery it also gets what it missed).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, emitAckTimeout, nextEvent, record, sleep, waitUntil } from "./harness.mjs";

const rustServer = !!process.env.SWARMCAST_TEST_SERVER;
const BURST = 10_000;
// Default configuration: a burst of 10,000 small events queued at once fits the
// per-connection byte bound (16 MiB), so the transports are checked as users run them.
const QUEUE_ARGS = [];

const MODES = {
  websocket: { transports: ["websocket"] },
  polling: { transports: ["polling"] },
  upgrade: {}, // the client's default: long-polling, then websocket
};

const RECONNECT = { reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300, randomizationFactor: 0 };

/** Asserts that `got` (recorded event args) holds seq 0..count-1 exactly once, in order. */
function assertInOrder(got, count, what) {
  const seqs = got.map((args) => args[0].seq);
  const firstWrong = seqs.findIndex((s, i) => s !== i);
  assert.equal(firstWrong, -1, `${what}: seq ${seqs[firstWrong]} at index ${firstWrong}`);
  assert.equal(seqs.length, count, `${what}: ${seqs.length} of ${count}`);
}

/** Kills the client's transport as a network failure would (no Socket.IO DISCONNECT). */
function dropTransport(socket) {
  const transport = socket.io.engine.transport;
  if (transport.name === "websocket") transport.ws._socket.destroy();
  else socket.io.engine.close(); // polling: nothing persistent to destroy
}

async function waitUpgraded(socket, mode) {
  if (mode !== "upgrade") return;
  await waitUntil(() => socket.io.engine?.transport?.name === "websocket", 10_000, "upgrade to websocket");
}

describe("interop: bursts and forced drops with socket.io-client", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ extraArgs: rustServer ? QUEUE_ARGS : [] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    test(`${BURST} events emitted at once arrive in order (${mode})`, { timeout: 120_000 }, async () => {
      const socket = await clients.connect(server.url, opts);
      await waitUpgraded(socket, mode);
      const got = record(socket, "b");
      const [sent] = await emitAckTimeout(socket, 60_000, "burst_me", { count: BURST, event: "b" });
      assert.equal(sent, BURST);
      await waitUntil(() => got.length >= BURST, 60_000, `${BURST} events (${mode})`);
      await sleep(100);
      assertInOrder(got, BURST, mode);
      assert.ok(socket.connected);
      socket.disconnect();
    });

    test(`a forced transport drop: the client reconnects and gets a burst (${mode})`, { timeout: 120_000 }, async () => {
      const socket = await clients.connect(server.url, { ...opts, ...RECONNECT });
      await waitUpgraded(socket, mode);
      const disconnected = nextEvent(socket, "disconnect", 10_000);
      dropTransport(socket);
      const [reason] = await disconnected;
      assert.ok(["transport close", "transport error", "forced close"].includes(reason), reason);
      await waitUntil(() => socket.connected, 15_000, "reconnected");
      await waitUpgraded(socket, mode);
      const got = record(socket, "b");
      await emitAckTimeout(socket, 60_000, "burst_me", { count: BURST, event: "b" });
      await waitUntil(() => got.length >= BURST, 60_000, `${BURST} events after reconnecting (${mode})`);
      await sleep(100);
      assertInOrder(got, BURST, `${mode}, after reconnecting`);
      socket.disconnect();
    });
  }
});

describe("interop: connection state recovery with socket.io-client", { skip: !rustServer && "needs the swarmcast server" }, () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ extraArgs: [...QUEUE_ARGS, "--recovery-ms", "15000"] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const [mode, opts] of Object.entries(MODES)) {
    test(`a burst live, a drop, then the ${BURST} events missed meanwhile (${mode})`, { timeout: 180_000 }, async () => {
      const room = `recovery-${mode}`;
      const observer = await clients.connect(server.url, { transports: ["websocket"] });
      // Reconnect after 1 s: a polling client's CLOSE with no GET pending waits up to
      // 500 ms for a GET in flight before the server ends the session, and a CONNECT
      // with the pid of a socket still connected cannot recover it.
      const socket = await clients.connect(server.url, { ...opts, ...RECONNECT, reconnectionDelay: 1000, reconnectionDelayMax: 1000 });
      await waitUpgraded(socket, mode);
      const idBefore = socket.id;
      await emitAck(socket, "join", room);
      const stream = (event) =>
        emitAckTimeout(observer, 60_000, "stream", { event, count: BURST, interval_ms: 0, room });

      const live = record(socket, "live");
      await stream("live");
      await waitUntil(() => live.length >= BURST, 60_000, `${BURST} live events (${mode})`);

      const missed = record(socket, "missed");
      const disconnected = nextEvent(socket, "disconnect", 10_000);
      dropTransport(socket);
      await disconnected;
      // Emitted to the room while the client is away.
      assert.deepEqual(await stream("missed"), [BURST]);
      await waitUntil(() => socket.connected, 15_000, "reconnected");
      assert.equal(socket.recovered, true, "socket.recovered");
      assert.equal(socket.id, idBefore, "same socket id");
      await waitUntil(() => missed.length >= BURST, 60_000, `${BURST} missed events (${mode})`);
      await sleep(200);
      assertInOrder(live, BURST, `${mode}, live`);
      assertInOrder(missed, BURST, `${mode}, missed`);
      const [who] = await emitAck(socket, "whoami");
      assert.deepEqual(who.rooms, [room], "rooms intact");
      socket.disconnect();
      observer.disconnect();
    });
  }
});
