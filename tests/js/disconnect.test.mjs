// 8. Disconnects: the server disconnecting a socket (`disconnect_me`) and the
// client disconnecting, seen from the server (`count_sockets` from another client).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, echo, nextEvent, sleep, waitUntil } from "./harness.mjs";

async function countSockets(observer) {
  const [n] = await emitAck(observer, "count_sockets");
  return n;
}

describe("disconnects", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const transport of ["websocket", "polling"]) {
    test(`disconnect_me: reason "io server disconnect" (${transport})`, { timeout: 10_000 }, async () => {
      const observer = await clients.connect(server.url, { transports: ["websocket"] });
      const socket = await clients.connect(server.url, { transports: [transport] });
      const before = await countSockets(observer);
      const disconnected = nextEvent(socket, "disconnect", 5000);
      socket.emit("disconnect_me");
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      assert.equal(socket.connected, false);
      await waitUntil(async () => (await countSockets(observer)) === before - 1, 5000, "server count to drop");
      // Not reconnected by itself after a server-side disconnect.
      await sleep(300);
      assert.equal(socket.connected, false);
      observer.disconnect();
    });

    test(`client disconnect() drops the server's count (${transport})`, { timeout: 10_000 }, async () => {
      const observer = await clients.connect(server.url, { transports: ["websocket"] });
      const base = await countSockets(observer);
      const socket = await clients.connect(server.url, { transports: [transport] });
      assert.equal(await countSockets(observer), base + 1);
      socket.disconnect();
      await waitUntil(async () => (await countSockets(observer)) === base, 5000, "server count to drop");
      assert.deepEqual(await echo(observer, "still here"), ["still here"]);
      observer.disconnect();
    });
  }

  test("counts are per namespace; leaving /chat keeps / on the same connection", { timeout: 10_000 }, async () => {
    const observerChat = await clients.connect(`${server.url}/chat`, { transports: ["websocket"] });
    const observerRoot = await clients.connect(server.url, { transports: ["websocket"] });
    const chatBase = await countSockets(observerChat);
    const rootBase = await countSockets(observerRoot);
    const root = await clients.connect(server.url, { transports: ["websocket"] });
    const chat = root.io.socket("/chat");
    clients.sockets.add(chat);
    await new Promise((resolve, reject) => {
      chat.once("connect", resolve);
      chat.once("connect_error", reject);
    });
    assert.equal(await countSockets(observerChat), chatBase + 1);
    assert.equal(await countSockets(observerRoot), rootBase + 1);
    chat.disconnect();
    await waitUntil(async () => (await countSockets(observerChat)) === chatBase, 5000, "/chat count to drop");
    assert.equal(await countSockets(observerRoot), rootBase + 1, "/ is still connected");
    assert.deepEqual(await echo(root, "root alive"), ["root alive"]);
  });

  test("closing the whole connection drops every namespace", { timeout: 10_000 }, async () => {
    const observerChat = await clients.connect(`${server.url}/chat`, { transports: ["websocket"] });
    const observerRoot = await clients.connect(server.url, { transports: ["websocket"] });
    const chatBase = await countSockets(observerChat);
    const rootBase = await countSockets(observerRoot);
    const root = await clients.connect(server.url, { transports: ["websocket"] });
    const chat = root.io.socket("/chat");
    clients.sockets.add(chat);
    await new Promise((resolve, reject) => {
      chat.once("connect", resolve);
      chat.once("connect_error", reject);
    });
    assert.equal(await countSockets(observerChat), chatBase + 1);
    root.io.engine.close();
    await waitUntil(async () => (await countSockets(observerChat)) === chatBase, 5000, "/chat count to drop");
    await waitUntil(async () => (await countSockets(observerRoot)) === rootBase, 5000, "/ count to drop");
  });
});
