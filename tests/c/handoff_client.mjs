// The official client's side of tests/c/handoff.c: waits for the line "PORT <n>" in the
// C program's output file, connects with socket.io-client, sends "work" and checks the
// 500 events {w: 0..499} came before its answer, listens for "n" and the deltas of
// the state map "agents", subscribes to it, sends "ready", and once the server
// disconnects it checks it got {i: 0..999} with the delta of key k<i> after each
// i = 99, 199, ..., the delete of k99, {i: 1000..1299}, then {i: "end"}, in order, and
// nothing else. Prints "ok - ..." / "not ok - ..." lines;
// exits non-zero on any failure.
// Usage: node handoff_client.mjs OUTPUT_FILE
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tap, sleep, within } from "./tap.mjs";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [file] = process.argv.slice(2);
const { check, finish } = tap("handoff client", 60_000);

async function port() {
  for (let i = 0; i < 300; i++) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {}
    const m = text.match(/^PORT (\d+)$/m);
    if (m) return Number(m[1]);
    await sleep(100);
  }
  throw new Error("no PORT line");
}

try {
  const socket = io(`http://127.0.0.1:${await port()}`, { reconnection: false });
  const got = [];
  socket.on("n", (data) => got.push(data?.i));
  socket.on("swarmcast:delta", (d) => got.push(d.deleted ? `deleted ${d.key}` : `${d.key}=${d.value}`));
  const left = new Promise((resolve) => socket.once("disconnect", resolve));
  await within(10_000, new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  }), "connect");
  check(true, "connected");
  const work = [];
  socket.on("w", (data) => work.push(data?.w));
  const answer = await within(30_000, socket.emitWithAck("work"), "the answer to work");
  const before = work.length === 500 && work.every((v, k) => v === k);
  check(answer === "done" && before, `the answer (${JSON.stringify(answer)}) came after the 500 events it followed (${work.length} before it)`);
  const subscribed = await within(10_000, socket.emitWithAck("subscribe", { state: "agents" }), "subscribe");
  check(subscribed?.ok === true, `subscribed to the state map (${JSON.stringify(subscribed)})`);
  socket.emit("ready");
  const reason = await within(30_000, left, "the server's disconnect");
  check(reason === "io server disconnect", `disconnected by the server (${reason})`);
  const want = [];
  for (let i = 0; i < 1000; i++) {
    want.push(i);
    if (i % 100 === 99) want.push(`k${i}=${i}`);
  }
  want.push("deleted k99", ...Array.from({ length: 300 }, (_, k) => 1000 + k), "end");
  const same = got.length === want.length && got.every((v, k) => v === want[k]);
  const first = got.findIndex((v, k) => v !== want[k]);
  check(same, `got 0..1299 with the state changes in place, then "end", before the disconnect (${got.length} events, first difference at ${first}: ${JSON.stringify(got.slice(first, first + 3))})`);
} catch (e) {
  check(false, e.message);
}
finish();
