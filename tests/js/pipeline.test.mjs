// The event pipeline with the official socket.io-client 4.8: keyed live state
// (randomised, concurrent setters, exact reconstruction), subscription filters,
// connection state recovery, and a slow consumer among healthy clients.
// Needs the swarmcast e2e server (the reference server has none of this).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { LiveState } from "../../clients/js/live-state.mjs";
import { startServer, Clients, emitAck, emitAckTimeout, record, sleep, waitUntil } from "./harness.mjs";

const rustServer = !!process.env.SWARMCAST_TEST_SERVER;

function seqCheck(values, count) {
  const seen = new Map();
  for (const v of values) seen.set(v, (seen.get(v) ?? 0) + 1);
  const missing = [];
  for (let i = 0; i < count; i++) if (!seen.has(i)) missing.push(i);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([v]) => v);
  return { missing, duplicates };
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

describe("keyed live state and subscriptions", { skip: !rustServer && "needs the swarmcast server" }, () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer({ extraArgs: ["--allow-subscribe", "state:*", "--allow-subscribe", "agents:*"] });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const transport of ["websocket", "polling"]) {
    test(`snapshot then deltas reconstruct the map under concurrent setters (${transport})`, { timeout: 60_000 }, async () => {
      const early = await clients.connect(server.url, { transports: [transport] });
      const earlyState = new LiveState(early, `agents-${transport}`);
      await waitUntil(() => earlyState.ready, 5000, "first snapshot");
      const driver = await clients.connect(server.url, { transports: ["websocket"] });
      const run = emitAckTimeout(driver, 50_000, "state_run", { map: `agents-${transport}`, threads: 4, keys: 64, updates: 3000 });
      // A subscriber that joins mid-run must also converge: snapshot and deltas meet exactly.
      await sleep(20);
      const late = await clients.connect(server.url, { transports: [transport] });
      const lateState = new LiveState(late, `agents-${transport}`);
      const [finalMap] = await run;
      assert.ok(Object.keys(finalMap).length > 0);
      for (const [name, state] of [["early", earlyState], ["late", lateState]]) {
        await waitUntil(
          () => JSON.stringify(sortKeys(state.entries)) === JSON.stringify(sortKeys(finalMap)),
          20_000,
          `${name} subscriber converges`,
        );
      }
    });
  }

  test("key filters and event filters deliver only what matches", { timeout: 20_000 }, async () => {
    const socket = await clients.connect(server.url, { transports: ["websocket"] });
    const [denied] = await emitAck(socket, "subscribe", { room: "private" });
    assert.deepEqual(denied, { ok: false, error: "not allowed" });
    const [ok] = await emitAck(socket, "subscribe", { room: "agents:1", events: ["status"] });
    assert.deepEqual(ok, { ok: true });
    const status = record(socket, "status");
    const chatter = record(socket, "chatter");
    await emitAck(socket, "to_rooms", { rooms: ["agents:1"], event: "chatter", data: 1 });
    await emitAck(socket, "to_rooms", { rooms: ["agents:1"], event: "status", data: "busy" });
    await waitUntil(() => status.length === 1, 5000, "status");
    await sleep(200);
    assert.equal(chatter.length, 0);

    const filtered = new LiveState(socket, "filtered", { keys: ["k1"] });
    await waitUntil(() => filtered.ready, 5000, "snapshot");
    const driver = await clients.connect(server.url, { transports: ["websocket"] });
    const [finalMap] = await emitAckTimeout(driver, 20_000, "state_run", { map: "filtered", threads: 1, keys: 4, updates: 200 });
    await waitUntil(() => JSON.stringify(filtered.entries.k1) === JSON.stringify(finalMap.k1), 5000, "k1 converges");
    assert.deepEqual(Object.keys(filtered.entries).filter((k) => k !== "k1"), []);
  });
});

function sortKeys(o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

describe("connection state recovery", { skip: !rustServer && "needs the swarmcast server" }, () => {
  const clients = new Clients();
  after(() => clients.closeAll());

  for (const transport of ["websocket", "polling"]) {
    test(`a dropped client gets every missed packet, once (${transport})`, { timeout: 60_000 }, async () => {
      const server = await startServer({ extraArgs: ["--recovery-ms", "10000"] });
      try {
        const socket = await clients.connect(server.url, {
          transports: [transport],
          reconnection: true,
          reconnectionDelay: 100,
          reconnectionDelayMax: 200,
        });
        const sidBefore = socket.id;
        await emitAck(socket, "join", "stream-room");
        const seqs = [];
        socket.on("seq", (data) => seqs.push(data.seq));
        const COUNT = 400;
        // The ack is lost with the connection (acks are not recovered): only the events count.
        const done = emitAckTimeout(socket, 30_000, "stream", { event: "seq", count: COUNT, interval_ms: 5, room: "stream-room" }).catch(() => null);
        await waitUntil(() => seqs.length > 50, 10_000, "stream under way");
        socket.emit("drop_me");
        await waitUntil(() => !socket.connected, 5000, "dropped");
        await waitUntil(() => socket.connected, 10_000, "reconnected");
        assert.equal(socket.recovered, true, "socket.recovered");
        assert.equal(socket.id, sidBefore, "same socket id");
        const [who] = await emitAck(socket, "whoami");
        assert.deepEqual(who.rooms, ["stream-room"], "rooms intact");
        await done;
        await waitUntil(() => seqs.length >= COUNT, 15_000, "all packets");
        await sleep(200);
        assert.deepEqual(seqCheck(seqs, COUNT), { missing: [], duplicates: [] });
      } finally {
        clients.closeAll();
        await server.stop();
      }
    });
  }

  test("past the window a client gets a fresh session", { timeout: 30_000 }, async () => {
    const server = await startServer({ extraArgs: ["--recovery-ms", "200"] });
    try {
      const socket = await clients.connect(server.url, {
        transports: ["websocket"],
        reconnection: true,
        reconnectionDelay: 1000,
        reconnectionDelayMax: 1000,
        randomizationFactor: 0,
      });
      const sidBefore = socket.id;
      socket.emit("drop_me");
      await waitUntil(() => !socket.connected, 5000, "dropped");
      await waitUntil(() => socket.connected, 10_000, "reconnected");
      assert.equal(socket.recovered, false);
      assert.notEqual(socket.id, sidBefore);
      const [echoed] = await emitAck(socket, "ack", "still works");
      assert.equal(echoed, "still works");
    } finally {
      clients.closeAll();
      await server.stop();
    }
  });
});

describe("slow consumer", { skip: !rustServer && "needs the swarmcast server" }, () => {
  test("a stalled client is disconnected and recovers; memory stays bounded; others unaffected", { timeout: 90_000 }, async () => {
    const server = await startServer({ extraArgs: ["--recovery-ms", "30000", "--queue-packets", "2000"] });
    const clients = new Clients();
    try {
      const opts = { transports: ["websocket"], reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 };
      const stalled = await clients.connect(server.url, opts);
      const healthy = await clients.connect(server.url, opts);
      const observer = await clients.connect(server.url, { transports: ["websocket"] });
      const [before] = await emitAck(observer, "server_stats");
      const stalledSeqs = [];
      stalled.on("flood", (d) => stalledSeqs.push(d.seq));
      const healthySeqs = [];
      const latencies = [];
      healthy.on("flood", (d) => {
        healthySeqs.push(d.seq);
        latencies.push(Date.now() - d.ts);
      });
      // Stop reading: the kernel buffers fill, then the server-side queue.
      stalled.io.engine.transport.ws._socket.pause();
      const COUNT = 100_000;
      const start = Date.now();
      await emitAckTimeout(observer, 60_000, "stream", { event: "flood", count: COUNT, interval_ms: 2, batch: 50 });
      const [during] = await emitAck(observer, "server_stats");
      assert.ok(during.slow_consumers >= 1, `stalled client disconnected: ${JSON.stringify(during)}`);
      assert.ok(during.disconnect_reasons.includes("slow consumer"), JSON.stringify(during.disconnect_reasons));
      const growthMb = (during.rss_kb - before.rss_kb) / 1024;
      console.log(`# slow consumer: ${COUNT} events in ${Date.now() - start} ms; RSS ${before.rss_kb} -> ${during.rss_kb} kB (+${growthMb.toFixed(1)} MB); healthy p50 ${percentile(latencies, 50)} ms p99 ${percentile(latencies, 99)} ms`);
      assert.ok(growthMb < 150, `RSS growth ${growthMb} MB`);
      await waitUntil(() => healthySeqs.length >= COUNT, 20_000, "healthy client gets everything");
      assert.deepEqual(seqCheck(healthySeqs, COUNT), { missing: [], duplicates: [] });
      assert.ok(percentile(latencies, 99) < 1000, `healthy p99 ${percentile(latencies, 99)} ms`);
      // Let the stalled client read again: it sees the close, reconnects and catches up.
      stalled.io.engine.transport.ws._socket.resume();
      await waitUntil(() => stalled.connected && stalled.recovered, 20_000, "stalled client recovers");
      await waitUntil(() => stalledSeqs.length >= COUNT, 30_000, "stalled client catches up");
      await sleep(200);
      assert.deepEqual(seqCheck(stalledSeqs, COUNT), { missing: [], duplicates: [] });
    } finally {
      clients.closeAll();
      await server.stop();
    }
  });
});
