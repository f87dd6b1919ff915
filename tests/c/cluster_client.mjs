// The clients of tests/c/cluster.c: one socket.io-client on each of the two C nodes
// joined through Redis ("red" on node A, "blue" on node B), each checking that it got
// exactly its events, in order, from the other node and from a C Redis emitter.
// Prints "ok - ..." / "not ok - ..." lines. Usage: node cluster_client.mjs PORT_A PORT_B
import { createRequire } from "node:module";
import { tap, within } from "./tap.mjs";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [portA, portB] = process.argv.slice(2).map(Number);
if (!portA || !portB) {
  console.error("usage: node cluster_client.mjs PORT_A PORT_B");
  process.exit(2);
}

const { check, finish } = tap("cluster client", 40_000);

// One client: records every event (name and arguments) until it has "done" and
// "from-a". A server's emit returns once its own clients have the event; it reaches the
// other nodes through the node's publisher a moment later, so on node B "from-a" may
// come after the emitter's events: its order is not checked.
function client(port, room) {
  const socket = io(`http://127.0.0.1:${port}`, {
    auth: { room },
    reconnection: false,
    forceNew: true,
    transports: ["websocket"],
  });
  const got = [];
  const done = new Promise((resolve) => {
    socket.onAny((event, ...args) => {
      got.push({ event, args });
      const seen = (name) => got.some((e) => e.event === name);
      if (seen("done") && seen("from-a")) resolve();
    });
  });
  const connected = new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  return { socket, got, done, connected };
}

async function run() {
  const a = client(portA, "red");
  const b = client(portB, "blue");
  await within(10_000, Promise.all([a.connected, b.connected]), "connect");
  // Both in their rooms (the connect callback joined them) before anything is emitted.
  const acks = await within(
    10_000,
    Promise.all([a.socket.emitWithAck("ready"), b.socket.emitWithAck("ready")]),
    "ready acks",
  );
  check(acks.every((r) => r?.ok === true), "both nodes answered the ready acks");
  await within(20_000, Promise.all([a.done, b.done]), "done on both clients").catch((e) => {
    for (const [c, name] of [[a, "A"], [b, "B"]]) {
      console.log(`# client of node ${name} got ${JSON.stringify(c.got)}`);
    }
    throw e;
  });

  // The emitter's events in emit order; "from-a" once, anywhere (see above).
  const names = (c) => c.got.map((e) => e.event).filter((n) => n !== "from-a").join(",");
  const fromA = (c) => c.got.filter((e) => e.event === "from-a").length;
  check(
    names(a) === "hello,not-blue,both-rooms,done" && fromA(a) === 1,
    `client of node A (room red) got ${names(a)} and from-a x${fromA(a)}`,
  );
  check(
    names(b) === "hello,blue-only,both-rooms,done" && fromA(b) === 1,
    `client of node B (room blue) got ${names(b)} and from-a x${fromA(b)}`,
  );
  const args = (c, name) => JSON.stringify(c.got.find((e) => e.event === name)?.args);
  check(args(b, "from-a") === '[{"n":1}]', `node A's emit reached node B's client: ${args(b, "from-a")}`);
  check(args(a, "hello") === '[{"n":2}]' && args(b, "hello") === '[{"n":2}]', "the emitter's JSON arrives as sent");
  check(args(a, "both-rooms") === '[["x",{"n":5}]]', `an array argument: ${args(a, "both-rooms")}`);
  check(args(a, "done") === "[null]", `a null argument: ${args(a, "done")}`);
  a.socket.close();
  b.socket.close();
}

run()
  .catch((e) => {
    check(false, `error: ${e?.message ?? e}`);
  })
  .finally(() => finish());
