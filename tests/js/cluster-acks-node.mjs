// A Node socket.io 4.8 node with @socket.io/redis-streams-adapter, and socket.io-client
// clients on any node, driven line by line by tests/cluster_acks.rs (broadcasts with
// acknowledgements across swarmcast and Node nodes). Not a test file of its own.
//
//   node tests/js/cluster-acks-node.mjs redis://127.0.0.1:PORT
//
// Prints `{"listening": <port>}` once the Node node serves, then reads JSON commands on
// stdin, one per line, and answers each with one JSON line on stdout:
//   {"cmd":"clients","url":"http://...","labels":["a0","a1"],"silent":["a1"]}
//       -> {"clients":{"a0":"<socket id>","a1":"<socket id>"}}
//     Each client answers `poll(arg, ack)` with ack({label, id, got: arg}), except
//     the silent ones, which never answer.
//   {"cmd":"emit","event":"poll","data":{...},"timeout":2000,"except":["<sid>"]}
//       -> {"err": null | "<message>", "responses": [...], "ms": <elapsed>}
//     io.except(...).timeout(t).emit(event, data, callback) on the Node node.
//   {"cmd":"quit"} -> closes everything and exits.

import http from "node:http";
import { createInterface } from "node:readline";
import { Server as IoServer } from "socket.io";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { io as connect } from "socket.io-client";
import { createClient } from "redis";

const redisUrl = process.argv[2];
const pub = createClient({ url: redisUrl });
pub.on("error", () => {});
await pub.connect();
const httpServer = http.createServer();
const io = new IoServer(httpServer, { adapter: createAdapter(pub) });
await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
// The adapter subscribes to its channels asynchronously: give it a moment, so that
// the node counts in PUBSUB NUMSUB before anyone asks.
await new Promise((r) => setTimeout(r, 300));

const clients = [];
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function makeClients({ url, labels, silent = [] }) {
  const ids = {};
  await Promise.all(
    labels.map(
      (label) =>
        new Promise((resolve, reject) => {
          const socket = connect(url, { transports: ["websocket"], reconnection: false, forceNew: true });
          clients.push(socket);
          socket.on("poll", (arg, ack) => {
            if (!silent.includes(label)) ack({ label, id: socket.id, got: arg });
          });
          socket.on("connect", () => {
            ids[label] = socket.id;
            resolve();
          });
          socket.on("connect_error", reject);
        }),
    ),
  );
  return { clients: ids };
}

function emit({ event = "poll", data = null, timeout = 2000, except = [] }) {
  return new Promise((resolve) => {
    const since = Date.now();
    io.except(except)
      .timeout(timeout)
      .emit(event, data, (err, responses) => {
        resolve({ err: err ? err.message : null, responses, ms: Date.now() - since });
      });
  });
}

async function quit() {
  for (const c of clients) c.close();
  io.close();
  await pub.quit().catch(() => {});
  process.exit(0);
}

say({ listening: httpServer.address().port });
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  try {
    const command = JSON.parse(line);
    if (command.cmd === "clients") say(await makeClients(command));
    else if (command.cmd === "emit") say(await emit(command));
    else if (command.cmd === "quit") await quit();
    else say({ error: `unknown command ${command.cmd}` });
  } catch (e) {
    say({ error: String(e?.message ?? e) });
  }
}
await quit();
