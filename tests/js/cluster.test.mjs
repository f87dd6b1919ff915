// swarmcast nodes joined through Redis, with the official socket.io-client 4.8:
// interop with a Node socket.io 4.8 server using @socket.io/redis-streams-adapter in
// the same cluster (broadcasts both ways, socket listings), @socket.io/redis-emitter
// publishing into a room, and failover (SIGKILL a node mid-stream; its clients
// recover on another node with zero missing and zero duplicate events).
//
// Starts its own redis-server on a free loopback port and the swarmcast CLI (cli/, the
// `redis` feature on by default; SWARMCAST_CLUSTER_BIN, default target/debug/swarmcast,
// built by `cargo test --workspace` in scripts/test.sh); skipped
// when either is missing.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import http from "node:http";
import path from "node:path";
import { createInterface } from "node:readline";
import { Server as IoServer } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import { REPO_ROOT, Clients, emitAck, nextEvent, sleep, waitUntil, withTimeout } from "./harness.mjs";

const BIN = path.resolve(REPO_ROOT, process.env.SWARMCAST_CLUSTER_BIN || "target/debug/swarmcast");

function skipReason() {
  if (spawnSync("redis-server", ["--version"]).status !== 0) return "redis-server is not installed";
  const help = spawnSync(BIN, ["emit", "--help"]);
  if (help.status !== 0) return `${BIN} is not built with the redis feature`;
  return false;
}
const skip = skipReason();

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {
      // gone
    }
  }
});

async function startRedis() {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  children.add(child);
  const url = `redis://127.0.0.1:${port}`;
  const probe = createClient({ url, socket: { reconnectStrategy: false } });
  probe.on("error", () => {});
  await waitUntil(async () => {
    try {
      await probe.connect();
      return true;
    } catch {
      return false;
    }
  }, 10_000, "redis-server");
  await probe.quit();
  return {
    url,
    stop: async () => {
      child.kill("SIGKILL");
      children.delete(child);
    },
  };
}

/** A swarmcast CLI node; resolves once it listens. */
async function startNode(redisUrl, extra = []) {
  const args = ["serve", "--port", "0", "--redis", redisUrl, "--ping-interval", "1000", "--ping-timeout", "2000", ...extra];
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  children.add(child);
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
    if (process.env.SWARMCAST_TEST_VERBOSE) process.stderr.write(d);
  });
  const rl = createInterface({ input: child.stdout });
  const port = await withTimeout(
    new Promise((resolve, reject) => {
      rl.on("line", (line) => {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`node exited (${code}): ${stderr}`)));
    }),
    20_000,
    "a swarmcast node",
  );
  const exited = new Promise((r) => child.on("exit", r));
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stderr: () => stderr,
    kill: async (signal = "SIGTERM") => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await withTimeout(exited, 5000, "node exit").catch(() => child.kill("SIGKILL"));
      children.delete(child);
    },
  };
}

/** POST /api/emit on a node. */
function apiEmit(node, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: "127.0.0.1",
        port: node.port,
        path: "/api/emit",
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

/** The first argument of the ack. */
async function ack1(socket, event, ...args) {
  const [first] = await emitAck(socket, event, ...args);
  return first;
}

/** Records every `event` a socket receives (first argument). */
function collect(socket, event) {
  const got = [];
  socket.on(event, (v) => got.push(v));
  return got;
}

/** A loopback TCP proxy whose target can be switched; switching cuts open connections. */
async function startProxy(targetPort) {
  let target = targetPort;
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    open.add(client);
    open.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    switchTo(port) {
      target = port;
    },
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

describe("a cluster through Redis", { skip }, () => {
  let redis;
  const clients = new Clients();
  const cleanups = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    clients.closeAll();
    for (const c of cleanups.reverse()) await c();
    await redis?.stop();
  });

  test("a Node socket.io server with @socket.io/redis-streams-adapter and a swarmcast node share broadcasts", { timeout: 60_000 }, async () => {
    const swarm = await startNode(redis.url, ["--allow-subscribe", "*"]);
    cleanups.push(() => swarm.kill());
    // The Node side: socket.io 4.8 with the streams adapter, in this process.
    const pub = createClient({ url: redis.url });
    pub.on("error", () => {});
    await pub.connect();
    const httpServer = http.createServer();
    const io = new IoServer(httpServer, { adapter: createAdapter(pub) });
    await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
    const nodeUrl = `http://127.0.0.1:${httpServer.address().port}`;
    io.on("connection", (socket) => {
      socket.on("join", (room, ack) => {
        socket.join(room);
        ack?.(true);
      });
    });
    cleanups.push(async () => {
      io.close();
      await pub.quit().catch(() => {});
    });
    await sleep(300); // the adapter's pub/sub subscription

    const onSwarm = await clients.connect(swarm.url, { transports: ["websocket"] });
    const onNode = await clients.connect(nodeUrl, { transports: ["websocket"] });
    const swarmGot = collect(onSwarm, "news");
    const nodeGot = collect(onNode, "news");

    // Node -> both.
    io.emit("news", { from: "node" });
    // swarmcast -> both.
    await apiEmit(swarm, { event: "news", data: { from: "swarmcast" } });
    await waitUntil(() => swarmGot.length >= 2 && nodeGot.length >= 2, 5000, "both broadcasts on both sides");
    await sleep(300);
    for (const got of [swarmGot, nodeGot]) {
      assert.deepEqual(got.map((m) => m.from).sort(), ["node", "swarmcast"], "each once");
    }

    // Rooms: a room joined on the Node side, reached from swarmcast.
    assert.equal(await ack1(onNode, "join", "r"), true);
    const inRoom = collect(onNode, "room");
    const outside = collect(onSwarm, "room");
    await apiEmit(swarm, { event: "room", data: 1, rooms: ["r"] });
    await waitUntil(() => inRoom.length === 1, 5000, "the room broadcast");
    // And a room joined on swarmcast, reached from Node.
    assert.deepEqual(await ack1(onSwarm, "subscribe", { room: "s" }), { ok: true });
    const swarmRoom = collect(onSwarm, "to_s");
    io.to("s").emit("to_s", 2);
    await waitUntil(() => swarmRoom.length === 1, 5000, "Node's room broadcast on swarmcast");
    await sleep(200);
    assert.equal(outside.length, 0);

    // The Node server lists the swarmcast node's sockets (FETCH_SOCKETS answered).
    const sockets = await io.fetchSockets();
    const ids = sockets.map((s) => s.id);
    assert.ok(ids.includes(onSwarm.id), `swarmcast's socket listed: ${ids}`);
    assert.ok(ids.includes(onNode.id));
    const remote = sockets.find((s) => s.id === onSwarm.id);
    assert.ok(remote.rooms.has("s"));
  });

  test("@socket.io/redis-emitter publishes to a room of swarmcast clients", { timeout: 30_000 }, async () => {
    const a = await startNode(redis.url, ["--allow-subscribe", "*"]);
    const b = await startNode(redis.url, ["--allow-subscribe", "*"]);
    cleanups.push(() => a.kill(), () => b.kill());
    const inA = await clients.connect(a.url, { transports: ["websocket"] });
    const inB = await clients.connect(b.url, { transports: ["polling"] });
    const notIn = await clients.connect(b.url, { transports: ["websocket"] });
    for (const s of [inA, inB]) assert.deepEqual(await ack1(s, "subscribe", { room: "news" }), { ok: true });
    const got = [inA, inB, notIn].map((s) => collect(s, "headline"));

    const client = createClient({ url: redis.url });
    client.on("error", () => {});
    await client.connect();
    cleanups.push(() => client.quit().catch(() => {}));
    const emitter = new Emitter(client);
    emitter.to("news").emit("headline", { title: "hello" }, 42);
    await waitUntil(() => got[0].length === 1 && got[1].length === 1, 5000, "the emitter's broadcast");
    // Several rooms go to the main channel.
    emitter.to("news").to("other").emit("headline", { title: "two" });
    await waitUntil(() => got[0].length === 2 && got[1].length === 2, 5000, "the second broadcast");
    await sleep(300);
    assert.deepEqual(got[0], [{ title: "hello" }, { title: "two" }]);
    assert.equal(got[2].length, 0, "a client outside the room gets nothing");

    // And the CLI publishes the same way, through the stream.
    const cli = spawnSync(BIN, ["emit", "--redis", redis.url, "--room", "news", "headline", '{"title":"cli"}'], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout.trim(), /^\d+-\d+$/);
    await waitUntil(() => got[0].length === 3 && got[1].length === 3, 5000, "the CLI's broadcast");
    assert.deepEqual(got[1][2], { title: "cli" });
  });

  test("failover: a node is killed mid-stream; its clients recover on another node, nothing missing or twice", { timeout: 60_000 }, async () => {
    const recovery = ["--recovery", "60", "--allow-subscribe", "*"];
    const a = await startNode(redis.url, recovery);
    const b = await startNode(redis.url, recovery);
    cleanups.push(() => a.kill(), () => b.kill());
    const proxy = await startProxy(a.port);
    cleanups.push(() => proxy.close());

    const socket = clients.socket(proxy.url, {
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      randomizationFactor: 0,
    });
    await nextEvent(socket, "connect", 10_000);
    assert.deepEqual(await ack1(socket, "subscribe", { room: "seq" }), { ok: true });
    const seen = [];
    socket.on("n", (v) => seen.push(v));
    const connects = [];
    socket.on("connect", () => connects.push(socket.recovered));

    // Events come from node B (it stays up); node A delivers them until it dies.
    const total = 400;
    let killed = false;
    for (let i = 0; i < total; i++) {
      await apiEmit(b, { event: "n", data: i, rooms: ["seq"] });
      if (!killed && seen.length >= 100) {
        killed = true;
        proxy.switchTo(b.port);
        await a.kill("SIGKILL");
      }
      if (i % 20 === 0) await sleep(5);
    }
    assert.ok(killed, "node A was killed mid-stream");
    await waitUntil(() => seen.length >= total, 20_000, `all ${total} events (have ${seen.length})`);
    await sleep(300);
    const counts = new Map();
    for (const v of seen) counts.set(v, (counts.get(v) ?? 0) + 1);
    const missing = [...Array(total).keys()].filter((i) => !counts.has(i));
    const duplicates = [...counts].filter(([, n]) => n > 1).map(([v]) => v);
    assert.deepEqual(missing, [], "zero missing");
    assert.deepEqual(duplicates, [], "zero duplicate");
    assert.ok(connects.length >= 1, "reconnected");
    assert.equal(connects.at(-1), true, "socket.recovered after failover");
    assert.deepEqual(seen, [...Array(total).keys()], "in order");
  });
});
