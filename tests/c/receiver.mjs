// The official client's side of tests/c/e2e.c: connects to the C program's server with
// socket.io-client and checks what arrives. Prints "ok - ..." / "not ok - ..." lines;
// exits non-zero on any failure. Usage: node receiver.mjs PORT THREADS PER_THREAD
import { createRequire } from "node:module";
import { tap, within } from "./tap.mjs";

// socket.io-client is installed for the Node suites, in tests/js/node_modules.
const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [port, threads, perThread] = process.argv.slice(2).map(Number);
if (!port || !threads || !perThread) {
  console.error("usage: node receiver.mjs PORT THREADS PER_THREAD");
  process.exit(2);
}
const url = `http://127.0.0.1:${port}`;
const STEP_MS = 10_000;

// Everything is bounded: the whole run, and each wait.
const { check, finish } = tap("receiver", 90_000);

async function run() {
  // 1. A client with the wrong token is refused by the C connect callback.
  const bad = io(url, { auth: { token: "bad" }, reconnection: false, forceNew: true });
  const refusal = await within(
    STEP_MS,
    new Promise((resolve) => {
      bad.on("connect_error", (err) => resolve(err));
      bad.on("connect", () => resolve(null));
    }),
    "refusal",
  );
  bad.close();
  check(refusal !== null && refusal.message === "unauthorized", `refused with message ${refusal?.message}`);
  check(refusal?.data?.hint === "token", `refusal data ${JSON.stringify(refusal?.data)}`);

  // 2. The right token is accepted; listeners are in place before anything is asked.
  const socket = io(url, {
    auth: { token: "good" },
    query: { agent: "receiver" }, // read back by the C side (swarmcast_server_socket_request)
    extraHeaders: { "X-Agent": "c-test" },
    reconnection: false,
    forceNew: true,
  });
  const seqs = new Map();
  let outOfOrder = 0;
  const roomMsgs = [];
  const directs = [];
  const snapshots = [];
  const deltas = [];
  let resolveDone;
  const done = new Promise((resolve) => {
    resolveDone = resolve;
  });
  socket.on("seq", ({ t, n }) => {
    const list = seqs.get(t) ?? [];
    if (list.length !== n) outOfOrder++;
    list.push(n);
    seqs.set(t, list);
  });
  socket.on("room-msg", (m) => roomMsgs.push(m));
  socket.on("direct", (m) => directs.push(m));
  const welcomes = [];
  socket.on("welcome", (m) => welcomes.push(m));
  socket.on("swarmcast:snapshot", (s) => snapshots.push(s));
  socket.on("swarmcast:delta", (d) => deltas.push(d));
  socket.on("done", (d) => resolveDone(d));

  await within(
    STEP_MS,
    new Promise((resolve, reject) => {
      socket.on("connect", resolve);
      socket.on("connect_error", reject);
    }),
    "connect",
  );
  check(true, "connected with the right token");

  const sub = await socket.timeout(STEP_MS).emitWithAck("subscribe", { state: "agents" });
  check(sub?.ok === true, `subscribed to state "agents": ${JSON.stringify(sub)}`);
  check(
    snapshots.length === 1 && snapshots[0].entries?.a1?.status === "booting",
    `snapshot holds what C set before the start: ${JSON.stringify(snapshots)}`,
  );

  const ready = await socket.timeout(STEP_MS).emitWithAck("ready", {});
  check(
    ready?.threads === threads && ready?.per_thread === perThread,
    `ready answered through the C ack inside the callback: ${JSON.stringify(ready)}`,
  );

  const summary = await within(60_000, done, "done");
  check(summary.threads === threads && summary.per_thread === perThread, "done received");
  let complete = seqs.size === threads;
  for (let t = 0; t < threads; t++) {
    const list = seqs.get(t) ?? [];
    if (list.length !== perThread || list.some((n, i) => n !== i)) {
      complete = false;
      console.log(`# thread ${t}: ${list.length} events, first ${list.slice(0, 5)}`);
    }
  }
  check(outOfOrder === 0, `every C thread's events came in the order emitted (${outOfOrder} out of order)`);
  check(complete, `exactly ${threads} x ${perThread} numbered events, none missing or extra`);
  check(
    roomMsgs.length === 1 && roomMsgs[0].room === "watchers",
    `room emit reached the room the C callback joined, and only it: ${JSON.stringify(roomMsgs)}`,
  );
  check(directs.length === 1 && directs[0].direct === true, "emit to this socket id arrived once");
  check(welcomes.length === 1 && welcomes[0].from === "callback", "emit made inside a C callback arrived");

  const state = { ...(snapshots[0]?.entries ?? {}) };
  let lastVersion = snapshots[0]?.version ?? 0;
  let monotonic = true;
  for (const d of deltas) {
    if (d.version <= lastVersion) monotonic = false;
    lastVersion = d.version;
    if (d.deleted) delete state[d.key];
    else state[d.key] = d.value;
  }
  check(monotonic, "state deltas come in version order");
  check(
    state.a1?.status === "running" && !("a2" in state),
    `state after the deltas: ${JSON.stringify(state)}`,
  );

  const sum = await socket.timeout(STEP_MS).emitWithAck("command", { op: "sum", values: [1, 2, 3] });
  check(sum?.ok === true && sum?.sum === 6, `command answered in the callback: ${JSON.stringify(sum)}`);
  const later = await socket.timeout(STEP_MS).emitWithAck("command", { op: "later" });
  check(later?.ok === true && later?.later === true, `command answered later from a C thread: ${JSON.stringify(later)}`);
  const nul = await socket.timeout(STEP_MS).emitWithAck("ev\0il", 1);
  check(
    nul.name_len === 5 && nul.strlen === 2 && nul.tail === "il",
    `an event name with a NUL reaches C whole, with its length: ${JSON.stringify(nul)}`,
  );
  // Arguments reach C as sent: a raw packet (socket.io-client's own encoder would
  // spell them its way) with keys out of order, an escape and a big integer.
  const raw = await new Promise((resolve, reject) => {
    const engine = socket.io.engine;
    const onMessage = (data) => {
      // Engine.IO messages carry Socket.IO packets: ACK 3, id 999.
      if (typeof data !== "string" || !data.startsWith("3999")) return; // other traffic
      clearTimeout(timer);
      engine.off("message", onMessage);
      resolve(data);
    };
    const timer = setTimeout(() => {
      engine.off("message", onMessage);
      reject(new Error("raw: no ack"));
    }, STEP_MS);
    engine.on("message", onMessage);
    engine.write('2999["raw",{"z":1,"a":"\\u00e9"},100000000000000000000]'); // EVENT, ack id 999
  });
  check(raw === '3999[{"same":true}]', `args_json holds the client's bytes: ${raw}`);
  const blob = await socket.timeout(STEP_MS).emitWithAck("blob", Buffer.from([1, 2, 3, 4]));
  check(
    blob?.attachments === 1 && blob?.len === 4 && blob?.sum === 10,
    `binary attachment reached C: ${JSON.stringify(blob)}`,
  );

  // A second socket stays connected while the first leaves: the C program then stops
  // the server, and this one must see the connection end.
  // WebSocket only: a polling client whose upgrade probe dies with the server leaves its
  // polling transport paused and only notices after the ping timeout (client behaviour).
  const idle = io(url, {
    auth: { token: "good" },
    query: { agent: "receiver" },
    extraHeaders: { "X-Agent": "c-test" },
    reconnection: false,
    forceNew: true,
    transports: ["websocket"],
  });
  await within(STEP_MS, new Promise((resolve) => idle.on("connect", resolve)), "idle connect");
  const idleGone = new Promise((resolve) => idle.on("disconnect", resolve));
  socket.disconnect();
  const reason = await within(30_000, idleGone, "server stop");
  check(typeof reason === "string", `the idle socket saw the server stop (${reason})`);
}

try {
  await run();
} catch (e) {
  check(false, `${e?.message ?? e}`);
}
finish({ summary: true });
