// Drives examples/c/agents.c with socket.io-client: follows the agents' events and the
// keyed state map, and sends commands answered through the C ack. Prints "ok - ..." /
// "not ok - ..." lines. Usage: node agents_client.mjs PORT AGENTS
import { createRequire } from "node:module";
import { tap, sleep } from "./tap.mjs";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [port, agents] = process.argv.slice(2).map(Number);
const { check, finish } = tap("agents client", 30_000);

try {
  const socket = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true });
  const seen = { agent_status: 0, task: 0, metric: 0 };
  const taskOrder = new Map();
  let orderOk = true;
  let snapshot = null;
  for (const name of Object.keys(seen)) socket.on(name, () => seen[name]++);
  socket.on("task", ({ agent, task, progress }) => {
    const last = taskOrder.get(agent);
    if (last && last.task === task && progress < last.progress) orderOk = false;
    if (last && task < last.task) orderOk = false;
    taskOrder.set(agent, { task, progress });
  });
  socket.on("swarmcast:snapshot", (s) => (snapshot = s));
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  const sub = await socket.timeout(5000).emitWithAck("subscribe", { state: "agents" });
  check(sub?.ok === true, "subscribed to the agents state map");
  await sleep(1500);
  check(seen.task > 0 && seen.agent_status > 0 && seen.metric > 0, `events arrive: ${JSON.stringify(seen)}`);
  check(orderOk, "each agent's task events come in order");
  check(
    snapshot !== null && Object.keys(snapshot.entries).length === agents,
    `state snapshot has one entry per agent: ${JSON.stringify(snapshot?.entries)}`,
  );
  const paused = await socket.timeout(5000).emitWithAck("command", { op: "pause", agent: 0 });
  check(paused?.ok === true && paused?.paused === true, `pause answered: ${JSON.stringify(paused)}`);
  const stats = await socket.timeout(5000).emitWithAck("command", { op: "stats" });
  check(stats?.ok === true && stats?.agents === agents && stats?.paused === 1, `stats answered: ${JSON.stringify(stats)}`);
  const bad = await socket.timeout(5000).emitWithAck("command", { op: "pause", agent: 999 });
  check(bad?.ok === false, `bad command refused: ${JSON.stringify(bad)}`);
  socket.disconnect();
} catch (e) {
  check(false, `${e?.message ?? e}`);
}
finish({ summary: true });
