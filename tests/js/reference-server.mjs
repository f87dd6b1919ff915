#!/usr/bin/env node
// Reference implementation of the swarmcast end-to-end test server, built on the
// official `socket.io` 4.8 and `engine.io` 6.6 packages. The Rust example
// `e2e_server` implements the same contract (see README.md in this folder); the
// tests in this folder are first made to pass against this file.
//
// Usage: node reference-server.mjs --port 0 [--ping-interval MS] [--ping-timeout MS]
//                                  [--max-payload BYTES] [--connect-timeout MS]
// Binds 127.0.0.1 and prints `LISTENING <port>` on stdout once it accepts connections.

import http from "node:http";
import { Server as SocketIOServer } from "socket.io";
import { Server as EngineServer } from "engine.io";

// ---------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const opts = {
    port: 0,
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1_000_000,
    connectTimeout: 45000,
  };
  const names = {
    "--port": "port",
    "--ping-interval": "pingInterval",
    "--ping-timeout": "pingTimeout",
    "--max-payload": "maxPayload",
    "--connect-timeout": "connectTimeout",
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    const eq = flag.indexOf("=");
    if (eq !== -1) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else {
      value = argv[++i];
    }
    const key = names[flag];
    if (!key) fail(`unknown argument: ${flag}`);
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < 0) {
      fail(`${flag} needs a non-negative integer, got ${value}`);
    }
    opts[key] = n;
  }
  return opts;
}

function fail(message) {
  process.stderr.write(`reference-server: ${message}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const log = (...args) => process.stderr.write(`[reference-server] ${args.join(" ")}\n`);

// ---------------------------------------------------------------------------
// HTTP server: /healthz here; /socket.io/ and /engine.io/ are intercepted by the
// Socket.IO and Engine.IO servers attached below.

const httpServer = http.createServer((req, res) => {
  const path = new URL(req.url, "http://127.0.0.1").pathname;
  if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": "2" });
    res.end(req.method === "HEAD" ? undefined : "ok");
    return;
  }
  res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
  res.end("not found");
});

const cors = { origin: true, credentials: true };
const common = {
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  cors,
  // Two Engine.IO servers share this HTTP server: neither may destroy upgrade
  // requests that belong to the other one.
  destroyUpgrade: false,
};

// ---------------------------------------------------------------------------
// Socket.IO at /socket.io/

const io = new SocketIOServer(httpServer, {
  ...common,
  path: "/socket.io/",
  serveClient: false,
  connectTimeout: opts.connectTimeout,
});

// `whoami` reports the CONNECT payload, or null when the CONNECT packet carried
// none. socket.io itself turns a missing payload into `{}`, so the raw CONNECT
// packets are watched on the Engine.IO connection to tell the two apart.
const kConnectPayload = Symbol("connectPayload");
io.engine.on("connection", (conn) => {
  conn[kConnectPayload] = new Map();
  conn.on("packet", (packet) => {
    if (packet.type !== "message" || typeof packet.data !== "string") return;
    const data = packet.data;
    if (data[0] !== "0") return; // Socket.IO CONNECT
    let rest = data.slice(1);
    let nsp = "/";
    if (rest[0] === "/") {
      const comma = rest.indexOf(",");
      nsp = comma === -1 ? rest : rest.slice(0, comma);
      rest = comma === -1 ? "" : rest.slice(comma + 1);
    }
    conn[kConnectPayload].set(nsp, rest.length > 0);
  });
});

function handshakeAuth(socket) {
  const seen = socket.conn[kConnectPayload];
  const hadPayload = seen ? seen.get(socket.nsp.name) : true;
  return hadPayload ? socket.handshake.auth : null;
}

function roomsOf(socket) {
  return [...socket.rooms].filter((r) => r !== socket.id).sort();
}

// Split `(...args, ack?)` into the arguments and the ack callback, if any.
function splitAck(args) {
  if (args.length > 0 && typeof args[args.length - 1] === "function") {
    return [args.slice(0, -1), args[args.length - 1]];
  }
  return [args, null];
}

function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function registerHandlers(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("echo", (...raw) => {
      const [args] = splitAck(raw);
      socket.emit("echo", ...args);
    });

    socket.on("ack", (...raw) => {
      const [args, ack] = splitAck(raw);
      if (ack) ack(...args);
    });

    socket.on("whoami", (...raw) => {
      const [, ack] = splitAck(raw);
      if (!ack) return;
      ack({
        sid: socket.id,
        namespace: nsp.name,
        auth: handshakeAuth(socket),
        rooms: roomsOf(socket),
      });
    });

    socket.on("join", (...raw) => {
      const [[room], ack] = splitAck(raw);
      if (typeof room === "string") socket.join(room);
      if (ack) ack(roomsOf(socket));
    });

    socket.on("leave", (...raw) => {
      const [[room], ack] = splitAck(raw);
      if (typeof room === "string") socket.leave(room);
      if (ack) ack(roomsOf(socket));
    });

    socket.on("to_rooms", (...raw) => {
      const [[req], ack] = splitAck(raw);
      if (isObject(req) && Array.isArray(req.rooms) && typeof req.event === "string") {
        let op = nsp.to(req.rooms);
        if (Array.isArray(req.except) && req.except.length > 0) op = op.except(req.except);
        op.emit(req.event, req.data);
      }
      if (ack) ack(true);
    });

    socket.on("broadcast", (...raw) => {
      const [[req], ack] = splitAck(raw);
      if (isObject(req) && typeof req.event === "string") {
        if (req.include_self) nsp.emit(req.event, req.data);
        else socket.broadcast.emit(req.event, req.data);
      }
      if (ack) ack(true);
    });

    socket.on("request_ack", (...raw) => {
      const [[req]] = splitAck(raw);
      const data = isObject(req) ? req.data : undefined;
      const timeoutMs = isObject(req) && Number.isFinite(req.timeout_ms) ? req.timeout_ms : 1000;
      socket.timeout(timeoutMs).emit("server_ack", data, (err, value) => {
        if (err) socket.emit("server_ack_result", { ok: false, error: "timeout" });
        else socket.emit("server_ack_result", { ok: true, value: value === undefined ? null : value });
      });
    });

    socket.on("thread_burst", (...raw) => {
      const [[req], ack] = splitAck(raw);
      const count = isObject(req) && Number.isInteger(req.count) ? Math.min(req.count, 100_000) : 0;
      const event = isObject(req) && typeof req.event === "string" ? req.event : "burst";
      // The Rust server emits from a separate OS thread; a setImmediate loop is
      // the Node equivalent: the emits happen outside this handler's call.
      let i = 0;
      const step = () => {
        const end = Math.min(count, i + 100);
        for (; i < end; i++) nsp.emit(event, { seq: i });
        if (i < count) setImmediate(step);
        else if (ack) ack(true);
      };
      setImmediate(step);
    });

    socket.on("binary", (...raw) => {
      const [, ack] = splitAck(raw);
      socket.emit("binary", Buffer.from([1, 2, 3, 255]), { nested: Buffer.from("hello") });
      if (ack) ack(Buffer.from([9, 8, 7]));
    });

    socket.on("disconnect_me", () => {
      socket.disconnect();
    });

    socket.on("burst_me", (...raw) => {
      const [[req], ack] = splitAck(raw);
      const count = isObject(req) && Number.isInteger(req.count) ? Math.min(req.count, 100_000) : 0;
      const event = isObject(req) && typeof req.event === "string" ? req.event : "burst";
      // All at once, inside the handler, to the sender only.
      for (let i = 0; i < count; i++) socket.emit(event, { seq: i });
      if (ack) ack(count);
    });

    socket.on("count_sockets", (...raw) => {
      const [, ack] = splitAck(raw);
      if (ack) ack(nsp.sockets.size);
    });
  });
}

registerHandlers(io.of("/"));
registerHandlers(io.of("/chat"));
const admin = io.of("/admin");
admin.use((socket, next) => {
  const auth = socket.handshake.auth;
  if (isObject(auth) && auth.token === "secret") return next();
  const err = new Error("unauthorized");
  err.data = { code: 401 };
  next(err);
});
registerHandlers(admin);
// Any other namespace is refused by socket.io with CONNECT_ERROR "Invalid namespace".

// ---------------------------------------------------------------------------
// Raw Engine.IO echo at /engine.io/

const eio = new EngineServer({ ...common });
eio.attach(httpServer, { path: "/engine.io/", destroyUpgrade: false });
eio.on("connection", (conn) => {
  conn.on("message", (data) => conn.send(data));
});

// ---------------------------------------------------------------------------

httpServer.listen(opts.port, "127.0.0.1", () => {
  const { port } = httpServer.address();
  log(
    `pid ${process.pid} ping-interval=${opts.pingInterval} ping-timeout=${opts.pingTimeout}` +
      ` max-payload=${opts.maxPayload} connect-timeout=${opts.connectTimeout}`,
  );
  process.stdout.write(`LISTENING ${port}\n`);
});

function shutdown(signal) {
  log(`${signal}: shutting down`);
  io.close();
  eio.close();
  httpServer.close();
  // Do not wait for lingering keep-alive connections.
  setTimeout(() => process.exit(0), 200).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
