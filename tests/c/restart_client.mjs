// The official client's side of tests/c/restart.c: for each round, waits for the line
// "PORT_<round> <n>" in the C program's output file, connects with socket.io-client,
// sends "ping" (acked with the round), gets "news", and leaves. Prints "ok - ..." /
// "not ok - ..." lines; exits non-zero on any failure.
// Usage: node restart_client.mjs OUTPUT_FILE ROUNDS
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tap, sleep } from "./tap.mjs";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [file, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
const { check, finish } = tap("restart client", 60_000);

async function port(round) {
  for (let i = 0; i < 300; i++) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {}
    const m = text.match(new RegExp(`^PORT_${round} (\\d+)$`, "m"));
    if (m) return Number(m[1]);
    await sleep(100);
  }
  throw new Error(`no PORT_${round} line`);
}

for (let round = 0; round < rounds; round++) {
  const p = await port(round);
  const socket = io(`http://127.0.0.1:${p}`, { auth: { token: "good" }, reconnection: false });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    check(true, `round ${round}: connected`);
    const news = new Promise((resolve) => socket.once("news", resolve));
    const answer = await socket.timeout(10_000).emitWithAck("ping", round);
    check(answer?.round === round, `round ${round}: ping acked with the round`);
    const event = await Promise.race([news, sleep(10_000).then(() => null)]);
    check(event?.round === round, `round ${round}: news received`);
  } catch (e) {
    check(false, `round ${round}: ${e.message}`);
  } finally {
    socket.disconnect();
  }
}
finish();
