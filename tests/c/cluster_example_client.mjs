// A client of examples/c/cluster.c's node: connects, prints "connected", then waits for
// COUNT events named EVENT (published by the example's emit mode through Redis) and
// checks their argument. Prints "ok - ..." / "not ok - ..." lines.
// Usage: node cluster_example_client.mjs PORT EVENT COUNT
import { createRequire } from "node:module";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [port, event, count] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
if (!port || !event || !count) {
  console.error("usage: node cluster_example_client.mjs PORT EVENT COUNT");
  process.exit(2);
}
const socket = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true });
const got = [];
const finish = (ok, what) => {
  console.log(`${ok ? "ok" : "not ok"} - examples/c/cluster.c: ${what}`);
  socket.close();
  process.exit(ok ? 0 : 1);
};
const timer = setTimeout(() => finish(false, `timed out with ${got.length} of ${count} "${event}" events`), 30_000);
socket.on("connect", () => console.log("connected"));
socket.on("connect_error", (e) => finish(false, `connect_error ${e.message}`));
socket.on(event, (arg) => {
  got.push(arg);
  if (got.length === count) {
    clearTimeout(timer);
    const same = got.every((a) => JSON.stringify(a) === JSON.stringify(got[0]));
    finish(same && got[0]?.agent === 7, `a client of the node got ${count} "${event}" events from the emit mode: ${JSON.stringify(got[0])}`);
  }
});
