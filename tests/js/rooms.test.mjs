// 3. Rooms: join/leave with acked room lists, `to_rooms` to several rooms (each
// socket at most once), `except` rooms, `broadcast` with and without the sender,
// and rooms being per namespace. Sockets outside the target get nothing within a
// short, bounded wait.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, Clients, emitAck, record, sleep, waitUntil } from "./harness.mjs";

// How long "nothing arrives" is watched after the expected messages arrived.
const QUIET_MS = 300;

describe("rooms", () => {
  let server;
  const clients = new Clients();
  let a;
  let b;
  let c;
  before(async () => {
    server = await startServer();
    [a, b, c] = await Promise.all([
      clients.connect(server.url, { transports: ["websocket"] }),
      clients.connect(server.url, { transports: ["websocket"] }),
      clients.connect(server.url, { transports: ["polling"] }),
    ]);
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  test("join and leave ack the sorted room list without the own sid", { timeout: 10_000 }, async () => {
    assert.deepEqual(await emitAck(a, "join", "r2"), [["r2"]]);
    assert.deepEqual(await emitAck(a, "join", "r1"), [["r1", "r2"]]);
    assert.deepEqual(await emitAck(a, "join", "r1"), [["r1", "r2"]], "joining twice is idempotent");
    assert.deepEqual(await emitAck(a, "join", "tmp"), [["r1", "r2", "tmp"]]);
    assert.deepEqual(await emitAck(a, "leave", "tmp"), [["r1", "r2"]]);
    assert.deepEqual(await emitAck(a, "leave", "never-joined"), [["r1", "r2"]]);
    const [me] = await emitAck(a, "whoami");
    assert.deepEqual(me.rooms, ["r1", "r2"]);

    // join without an ack request still joins.
    b.emit("join", "r2");
    c.emit("join", "r3");
    await waitUntil(async () => (await emitAck(b, "whoami"))[0].rooms.includes("r2"), 5000, "b in r2");
    await waitUntil(async () => (await emitAck(c, "whoami"))[0].rooms.includes("r3"), 5000, "c in r3");
  });

  test("to_rooms reaches every socket in any target room exactly once", { timeout: 10_000 }, async () => {
    const ga = record(a, "room_msg");
    const gb = record(b, "room_msg");
    const gc = record(c, "room_msg");
    // a is in r1 and r2, b in r2, c in r3 only.
    assert.deepEqual(await emitAck(c, "to_rooms", { rooms: ["r1", "r2"], event: "room_msg", data: { n: 1 } }), [true]);
    await waitUntil(() => ga.length >= 1 && gb.length >= 1, 5000, "room_msg at a and b");
    await sleep(QUIET_MS);
    assert.deepEqual(ga, [[{ n: 1 }]], "a is in both rooms but gets the event once");
    assert.deepEqual(gb, [[{ n: 1 }]]);
    assert.deepEqual(gc, [], "c is in no target room");
    [ga, gb, gc].forEach((g) => g.stop());
  });

  test("to_rooms includes the sender when it is in a target room", { timeout: 10_000 }, async () => {
    const ga = record(a, "self_msg");
    const gb = record(b, "self_msg");
    assert.deepEqual(await emitAck(a, "to_rooms", { rooms: ["r1"], event: "self_msg", data: "x" }), [true]);
    await waitUntil(() => ga.length >= 1, 5000, "self_msg at a");
    await sleep(QUIET_MS);
    assert.deepEqual(ga, [["x"]]);
    assert.deepEqual(gb, []);
    [ga, gb].forEach((g) => g.stop());
  });

  test("to_rooms with except rooms", { timeout: 10_000 }, async () => {
    const ga = record(a, "except_msg");
    const gb = record(b, "except_msg");
    const gc = record(c, "except_msg");
    const req = { rooms: ["r2", "r3"], except: ["r1"], event: "except_msg", data: [1, "two"] };
    assert.deepEqual(await emitAck(b, "to_rooms", req), [true]);
    await waitUntil(() => gb.length >= 1 && gc.length >= 1, 5000, "except_msg at b and c");
    await sleep(QUIET_MS);
    assert.deepEqual(ga, [], "a is in r2 but also in the excepted r1");
    assert.deepEqual(gb, [[[1, "two"]]]);
    assert.deepEqual(gc, [[[1, "two"]]]);
    [ga, gb, gc].forEach((g) => g.stop());
  });

  test("to_rooms without ack request, and rooms nobody is in", { timeout: 10_000 }, async () => {
    const all = [a, b, c].map((s) => record(s, "ghost_msg"));
    a.emit("to_rooms", { rooms: ["nobody-here"], event: "ghost_msg", data: 1 });
    // An acked round trip after it proves the first request was handled.
    await emitAck(a, "count_sockets");
    await sleep(QUIET_MS);
    all.forEach((g) => assert.deepEqual(g, []));
    all.forEach((g) => g.stop());
  });

  test("after leave, the room no longer reaches the socket", { timeout: 10_000 }, async () => {
    assert.deepEqual(await emitAck(a, "leave", "r1"), [["r2"]]);
    const ga = record(a, "left_msg");
    assert.deepEqual(await emitAck(b, "to_rooms", { rooms: ["r1"], event: "left_msg", data: null }), [true]);
    await sleep(QUIET_MS);
    assert.deepEqual(ga, []);
    ga.stop();
  });

  test("broadcast excludes the sender unless include_self", { timeout: 10_000 }, async () => {
    const others = [b, c].map((s) => record(s, "bc"));
    const self = record(a, "bc");
    assert.deepEqual(await emitAck(a, "broadcast", { event: "bc", data: { k: 1 }, include_self: false }), [true]);
    await waitUntil(() => others.every((g) => g.length >= 1), 5000, "bc at b and c");
    await sleep(QUIET_MS);
    others.forEach((g) => assert.deepEqual(g, [[{ k: 1 }]]));
    assert.deepEqual(self, []);

    assert.deepEqual(await emitAck(a, "broadcast", { event: "bc", data: { k: 2 }, include_self: true }), [true]);
    await waitUntil(() => self.length >= 1 && others.every((g) => g.length >= 2), 5000, "second bc everywhere");
    await sleep(QUIET_MS);
    others.forEach((g) => assert.deepEqual(g, [[{ k: 1 }], [{ k: 2 }]]));
    assert.deepEqual(self, [[{ k: 2 }]]);
    [...others, self].forEach((g) => g.stop());
  });

  test("rooms and broadcasts are per namespace", { timeout: 10_000 }, async () => {
    const chat = await clients.connect(`${server.url}/chat`, { transports: ["websocket"] });
    assert.deepEqual(await emitAck(chat, "join", "r2"), [["r2"]]);
    const gChat = record(chat, "ns_msg");
    const gB = record(b, "ns_msg");
    // "/" room r2 holds a and b; the /chat socket in its own "r2" must not get it.
    assert.deepEqual(await emitAck(a, "to_rooms", { rooms: ["r2"], event: "ns_msg", data: "root" }), [true]);
    await waitUntil(() => gB.length >= 1, 5000, "ns_msg at b");
    // A broadcast on "/" does not reach /chat either.
    assert.deepEqual(await emitAck(a, "broadcast", { event: "ns_msg", data: "root-bc", include_self: false }), [true]);
    await waitUntil(() => gB.length >= 2, 5000, "second ns_msg at b");
    await sleep(QUIET_MS);
    assert.deepEqual(gChat, []);
    assert.deepEqual(gB, [["root"], ["root-bc"]]);
    // And the /chat room works within /chat.
    assert.deepEqual(await emitAck(chat, "to_rooms", { rooms: ["r2"], event: "ns_msg", data: "chat" }), [true]);
    await waitUntil(() => gChat.length >= 1, 5000, "ns_msg at chat");
    await sleep(QUIET_MS);
    assert.deepEqual(gChat, [["chat"]]);
    assert.deepEqual(gB, [["root"], ["root-bc"]]);
    [gChat, gB].forEach((g) => g.stop());
  });
});
