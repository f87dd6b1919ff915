// The official client's side of tests/c/handoff.c: waits for the line "PORT <n>" in the
// C program's output file, connects with socket.io-client, sends "work" and checks the
// 500 events {w: 0..499} came before its answer, listens for "n", sends "ready", and once the server disconnects it checks it got {i: 0..1299} then
// {i: "end"}, in order, and nothing else. Prints "ok - ..." / "not ok - ..." lines;
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
  socket.emit("ready");
  const reason = await within(30_000, left, "the server's disconnect");
  check(reason === "io server disconnect", `disconnected by the server (${reason})`);
  const want = [...Array(1300).keys(), "end"];
  const same = got.length === want.length && got.every((v, k) => v === want[k]);
  check(same, `got 0..1299 then "end" in order before the disconnect (${got.length} events, last ${JSON.stringify(got.slice(-2))})`);
} catch (e) {
  check(false, e.message);
}
finish();
