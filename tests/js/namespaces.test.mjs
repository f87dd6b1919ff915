// 2. Namespaces: "/chat", "/admin" with CONNECT auth, an unknown namespace, and
// several namespaces multiplexed over one Manager (one Engine.IO connection).

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import {
  startServer,
  Clients,
  emitAck,
  echo,
  record,
  sleep,
  waitConnected,
  waitConnectError,
} from "./harness.mjs";

describe("namespaces", () => {
  let server;
  const clients = new Clients();
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("whoami on / without auth reports auth null", { timeout: 10_000 }, async () => {
    const socket = await clients.connect(server.url, { transports: ["websocket"] });
    const [me] = await emitAck(socket, "whoami");
    assert.deepEqual(me, { sid: socket.id, namespace: "/", auth: null, rooms: [] });
  });

  test("whoami on / reports the CONNECT auth payload", { timeout: 10_000 }, async () => {
    const auth = { user: "ada", n: 3, nested: { ok: true } };
    const socket = await clients.connect(server.url, { transports: ["websocket"], auth });
    const [me] = await emitAck(socket, "whoami");
    assert.deepEqual(me, { sid: socket.id, namespace: "/", auth, rooms: [] });
  });

  test("/chat connects, echoes and acks", { timeout: 10_000 }, async () => {
    const socket = await clients.connect(`${server.url}/chat`, { transports: ["websocket"] });
    const [me] = await emitAck(socket, "whoami");
    assert.deepEqual(me, { sid: socket.id, namespace: "/chat", auth: null, rooms: [] });
    assert.deepEqual(await echo(socket, "in chat", { n: 1 }), ["in chat", { n: 1 }]);
    assert.deepEqual(await emitAck(socket, "ack", "x", 2), ["x", 2]);
  });

  test("/admin with the right token connects and whoami returns the auth", { timeout: 10_000 }, async () => {
    const socket = await clients.connect(`${server.url}/admin`, {
      transports: ["websocket"],
      auth: { token: "secret" },
    });
    const [me] = await emitAck(socket, "whoami");
    assert.deepEqual(me, { sid: socket.id, namespace: "/admin", auth: { token: "secret" }, rooms: [] });
  });

  for (const [label, opts] of [
    ["a wrong token", { auth: { token: "wrong" } }],
    ["no auth", {}],
  ]) {
    test(`/admin with ${label} gets connect_error unauthorized {code: 401}`, { timeout: 10_000 }, async () => {
      const socket = clients.socket(`${server.url}/admin`, { transports: ["websocket"], ...opts });
      const err = await waitConnectError(socket);
      assert.equal(err.message, "unauthorized");
      assert.deepEqual(err.data, { code: 401 });
      assert.equal(socket.connected, false);
    });
  }

  for (const transport of ["websocket", "polling"]) {
    test(`an unknown namespace gets connect_error "Invalid namespace" (${transport})`, { timeout: 10_000 }, async () => {
      const socket = clients.socket(`${server.url}/nope`, { transports: [transport] });
      const err = await waitConnectError(socket);
      assert.equal(err.message, "Invalid namespace");
      assert.equal(socket.connected, false);
    });
  }

  test("/ and /chat multiplexed over one Manager", { timeout: 15_000 }, async () => {
    const manager = new Manager(server.url, { reconnection: false, transports: ["websocket"] });
    const root = manager.socket("/");
    const chat = manager.socket("/chat");
    const admin = manager.socket("/admin", { auth: { token: "nope" } });
    for (const s of [root, chat, admin]) clients.sockets.add(s);
    const adminRefused = waitConnectError(admin);
    await Promise.all([waitConnected(root), waitConnected(chat)]);
    const adminErr = await adminRefused;
    assert.equal(adminErr.message, "unauthorized");

    assert.equal(root.io, chat.io, "both sockets share one Manager");
    const engine = manager.engine;
    assert.ok(engine && engine.id, "one Engine.IO session");

    const [meRoot] = await emitAck(root, "whoami");
    const [meChat] = await emitAck(chat, "whoami");
    assert.equal(meRoot.namespace, "/");
    assert.equal(meChat.namespace, "/chat");
    assert.equal(meRoot.sid, root.id);
    assert.equal(meChat.sid, chat.id);
    assert.notEqual(root.id, chat.id, "each namespace has its own socket id");

    // An echo on one namespace comes back on that namespace only.
    const rootEchoes = record(root, "echo");
    const chatEchoes = record(chat, "echo");
    chat.emit("echo", "chat-only");
    root.emit("echo", "root-only");
    const deadline = Date.now() + 5000;
    while ((rootEchoes.length < 1 || chatEchoes.length < 1) && Date.now() < deadline) await sleep(10);
    await sleep(200);
    assert.deepEqual(rootEchoes, [["root-only"]]);
    assert.deepEqual(chatEchoes, [["chat-only"]]);
    assert.equal(manager.engine, engine, "still the same Engine.IO session");

    // Leaving one namespace keeps the other working on the same connection.
    chat.disconnect();
    assert.deepEqual(await echo(root, "after chat left"), ["after chat left"]);
    assert.equal(manager.engine, engine);
  });
});
