// Shared fixture of the end-to-end tests: starts and stops the server under test,
// and offers small, always-bounded helpers around socket.io-client, raw WebSockets
// and raw HTTP.
//
// The server under test is the shell command in SWARMCAST_TEST_SERVER (relative
// paths resolve against the repository root), or the Node reference server.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { io as ioClient } from "socket.io-client";
import WebSocket from "ws";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..");

export const LISTEN_TIMEOUT_MS = 20_000;
const TERM_GRACE_MS = 3_000;

export const sleep = (ms) => delay(ms);

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/** The shell command that starts the server under test, without arguments. */
export function serverCommand() {
  const fromEnv = process.env.SWARMCAST_TEST_SERVER;
  if (fromEnv && fromEnv.trim() !== "") return fromEnv;
  return `${shellQuote(process.execPath)} ${shellQuote(path.join(HERE, "reference-server.mjs"))}`;
}

const running = new Set();
process.on("exit", () => {
  // Last resort if a test file dies without its `after` hooks: never leak servers.
  for (const srv of running) {
    try {
      process.kill(-srv.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/**
 * Starts the server under test with `--port 0` and the given options, and waits
 * (at most 20 s) for its `LISTENING <port>` line. `extraArgs` are appended as they
 * are (flags only the Rust server knows; tests using them skip the reference).
 *
 * `command` replaces the server under test (a program that takes `--port 0` and
 * prints the same line).
 *
 * @param {{pingInterval?: number, pingTimeout?: number, maxPayload?: number, connectTimeout?: number, extraArgs?: string[], command?: string}} [options]
 */
export async function startServer(options = {}) {
  const args = ["--port", "0"];
  if (options.pingInterval !== undefined) args.push("--ping-interval", String(options.pingInterval));
  if (options.pingTimeout !== undefined) args.push("--ping-timeout", String(options.pingTimeout));
  if (options.maxPayload !== undefined) args.push("--max-payload", String(options.maxPayload));
  if (options.connectTimeout !== undefined) args.push("--connect-timeout", String(options.connectTimeout));
  if (options.extraArgs) args.push(...options.extraArgs);
  const command = `${options.command ?? serverCommand()} ${args.join(" ")}`;
  const verbose = !!process.env.SWARMCAST_TEST_VERBOSE;

  // Its own process group, so that stop() reaches the server even when the
  // shell does not exec it.
  const child = spawn(command, {
    shell: true,
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env },
  });
  let stderrTail = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    if (verbose) process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk).slice(-8000);
  });
  // The server is gone once the spawned process has exited and every process
  // holding its stdout/stderr pipes has closed them (a shell wrapper's child
  // included). Polling kill(-pgid, 0) instead would also see unreaped zombies.
  let pipesOpen = 2;
  child.stdout.on("close", () => pipesOpen--);
  child.stderr.on("close", () => pipesOpen--);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const server = {
    pid: child.pid,
    command,
    port: 0,
    /** http://127.0.0.1:<port> */
    url: "",
    /** ws://127.0.0.1:<port> */
    wsUrl: "",
    stderr: () => stderrTail,
    stop: async () => {
      if (!running.has(server)) return;
      running.delete(server);
      const signalGroup = (sig) => {
        try {
          process.kill(-child.pid, sig);
        } catch {
          // group already gone
        }
      };
      const gone = () => exited !== null && pipesOpen === 0;
      signalGroup("SIGTERM");
      const deadline = Date.now() + TERM_GRACE_MS;
      while (!gone() && Date.now() < deadline) await sleep(20);
      if (!gone()) {
        signalGroup("SIGKILL");
        const killDeadline = Date.now() + 2000;
        while (!gone() && Date.now() < killDeadline) await sleep(20);
      }
      child.stdout.destroy();
      child.stderr.destroy();
    },
  };
  running.add(server);

  const rl = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`server did not print LISTENING within ${LISTEN_TIMEOUT_MS} ms: ${command}\n${stderrTail}`));
    }, LISTEN_TIMEOUT_MS);
    rl.on("line", (line) => {
      if (verbose) process.stderr.write(`[server stdout] ${line}\n`);
      const m = /^LISTENING (\d+)\s*$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exitPromise.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before LISTENING: ${command}\n${stderrTail}`));
    });
  }).catch(async (err) => {
    await server.stop();
    throw err;
  });
  // Keep draining stdout so the server never blocks on a full pipe.
  rl.on("line", () => {});
  server.port = port;
  server.url = `http://127.0.0.1:${port}`;
  server.wsUrl = `ws://127.0.0.1:${port}`;
  return server;
}

// ---------------------------------------------------------------------------
// Timing helpers

/** Resolves or rejects like `promise`, or rejects after `ms` with a message naming `what`. */
export function withTimeout(promise, ms, what = "operation") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Next `event` on an emitter (Node or socket.io-client style), as the array of its arguments. */
export function nextEvent(emitter, event, ms = 5000) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.on(event, handler);
  });
  return withTimeout(p, ms, `event "${event}"`).finally(() => emitter.off(event, handler));
}

/** Polls `predicate` every 10 ms until it is true; throws after `ms`. */
export async function waitUntil(predicate, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------------------
// socket.io-client helpers

/**
 * Tracks the clients a test opens so that they are always closed afterwards.
 * Every client is created with `reconnection: false` unless told otherwise, so
 * that nothing retries forever.
 */
export class Clients {
  constructor() {
    this.sockets = new Set();
    this.closers = new Set();
  }

  /** Creates a socket.io client (not awaited). */
  socket(url, opts = {}) {
    const socket = ioClient(url, { reconnection: false, forceNew: true, timeout: 5000, ...opts });
    this.sockets.add(socket);
    return socket;
  }

  /** Creates a socket.io client and waits until it is connected (or throws on connect_error). */
  async connect(url, opts = {}, ms = 10_000) {
    const socket = this.socket(url, opts);
    await waitConnected(socket, ms);
    return socket;
  }

  /** Registers anything with a close()/disconnect()/terminate() method to be closed at the end. */
  track(thing) {
    this.closers.add(thing);
    return thing;
  }

  closeAll() {
    for (const s of this.sockets) {
      try {
        s.io.opts.reconnection = false;
        s.disconnect();
        s.io.engine?.close();
      } catch {
        // ignore
      }
    }
    this.sockets.clear();
    for (const t of this.closers) {
      try {
        if (typeof t.terminate === "function") t.terminate();
        else if (typeof t.close === "function") t.close();
        else if (typeof t.disconnect === "function") t.disconnect();
      } catch {
        // ignore
      }
    }
    this.closers.clear();
  }
}

/** Waits for "connect"; rejects with the connect_error if there is one. */
export function waitConnected(socket, ms = 10_000) {
  if (socket.connected) return Promise.resolve(socket);
  let onConnect;
  let onError;
  const p = new Promise((resolve, reject) => {
    onConnect = () => resolve(socket);
    onError = (err) => reject(err);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
  return withTimeout(p, ms, `connect to ${socket.nsp}`).finally(() => {
    socket.off("connect", onConnect);
    socket.off("connect_error", onError);
  });
}

/** Waits for "connect_error" and returns the error; fails if the socket connects instead. */
export function waitConnectError(socket, ms = 10_000) {
  let onConnect;
  let onError;
  const p = new Promise((resolve, reject) => {
    onConnect = () => reject(new Error(`unexpectedly connected to ${socket.nsp}`));
    onError = (err) => resolve(err);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
  return withTimeout(p, ms, `connect_error on ${socket.nsp}`).finally(() => {
    socket.off("connect", onConnect);
    socket.off("connect_error", onError);
  });
}

/** Emits with an ack callback and resolves to the array of ALL ack arguments. */
export function emitAck(socket, event, ...args) {
  return emitAckTimeout(socket, 5000, event, ...args);
}

/** Like emitAck with an explicit timeout in ms. */
export function emitAckTimeout(socket, ms, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`no ack for "${event}" within ${ms} ms`));
      else resolve(res);
    });
  });
}

/** Records every `event` a socket receives (each entry: the array of args). */
export function record(socket, event) {
  const got = [];
  const handler = (...args) => got.push(args);
  socket.on(event, handler);
  Object.defineProperty(got, "stop", { value: () => socket.off(event, handler), enumerable: false });
  return got;
}

/** Echo round trip on an already connected socket: asserts nothing, returns the echoed args. */
export async function echo(socket, ...args) {
  const p = nextEvent(socket, "echo", 5000);
  socket.emit("echo", ...args);
  return p;
}

// ---------------------------------------------------------------------------
// Binary-aware comparison

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Replaces every binary value (Buffer, ArrayBuffer, typed array) by `{ $binary: hex }`
 * so that values decoded by different transports compare with deepEqual.
 */
export function normalize(value) {
  if (isBinary(value)) return { $binary: toBuffer(value).toString("hex") };
  if (Array.isArray(value)) return value.map(normalize);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = normalize(v);
    return out;
  }
  return value;
}

export { toBuffer };

// ---------------------------------------------------------------------------
// Raw HTTP and raw WebSocket helpers

/** fetch() with a timeout; resolves to { status, headers, text }. */
export async function request(url, init = {}, ms = 5000) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

/** Splits an Engine.IO v4 long-polling payload into its packets (0x1e separated). */
export function splitPayload(text) {
  return text === "" ? [] : text.split("\x1e");
}

/** Parses the Engine.IO OPEN packet `0{...}`. */
export function parseOpen(packet) {
  if (typeof packet !== "string" || packet[0] !== "0") throw new Error(`not an OPEN packet: ${packet}`);
  return JSON.parse(packet.slice(1));
}

/** Performs a polling handshake on `path` ("/socket.io/" or "/engine.io/"); returns the OPEN data. */
export async function pollingHandshake(server, pathName = "/socket.io/", headers = {}) {
  const res = await request(`${server.url}${pathName}?EIO=4&transport=polling`, { headers });
  if (res.status !== 200) throw new Error(`handshake answered ${res.status}: ${res.text}`);
  const packets = splitPayload(res.text);
  return { open: parseOpen(packets[0]), res };
}

/**
 * A raw WebSocket (the `ws` package) with a message queue and a close promise.
 * `next(ms)` resolves to the next text message (string) or binary message (Buffer).
 * `wsOptions` go to the `ws` constructor (for example `{ origin }` or `{ headers }`).
 */
export function rawWebSocket(url, clients, wsOptions = {}) {
  const ws = new WebSocket(url, wsOptions);
  if (clients) clients.track(ws);
  const queue = [];
  const waiters = [];
  let closeInfo = null;
  const closed = new Promise((resolve) => {
    ws.on("close", (code, reason) => {
      closeInfo = { code, reason: reason.toString(), at: Date.now() };
      resolve(closeInfo);
      while (waiters.length) waiters.shift().reject(new Error(`websocket closed (${code})`));
    });
  });
  ws.on("error", () => {
    // surfaced through "close"
  });
  ws.on("message", (data, isBinary) => {
    const msg = isBinary ? Buffer.from(data) : data.toString();
    if (waiters.length) waiters.shift().resolve(msg);
    else queue.push(msg);
  });
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("close", (code) => reject(new Error(`websocket closed before open (${code})`)));
  });
  const openedInTime = withTimeout(opened, 5000, "websocket open");
  openedInTime.catch(() => {}); // handled by whoever awaits it
  return {
    ws,
    opened: openedInTime,
    closed,
    get closeInfo() {
      return closeInfo;
    },
    next(ms = 5000) {
      if (queue.length) return Promise.resolve(queue.shift());
      if (closeInfo) return Promise.reject(new Error(`websocket closed (${closeInfo.code})`));
      let waiter;
      const p = new Promise((resolve, reject) => {
        waiter = { resolve, reject };
        waiters.push(waiter);
      });
      return withTimeout(p, ms, "websocket message").catch((err) => {
        const i = waiters.indexOf(waiter);
        if (i !== -1) waiters.splice(i, 1);
        throw err;
      });
    },
    send(data) {
      ws.send(data);
    },
  };
}

/**
 * Opens a raw Engine.IO WebSocket session on /socket.io/ and reads the OPEN packet.
 * With `connect: true` it also sends the Socket.IO CONNECT `40` and reads the answer.
 */
export async function rawSocketIo(server, clients, { connect = true } = {}) {
  const conn = rawWebSocket(`${server.wsUrl}/socket.io/?EIO=4&transport=websocket`, clients);
  await conn.opened;
  const open = parseOpen(await conn.next());
  let connectAnswer = null;
  if (connect) {
    conn.send("40");
    // Engine.IO pings may arrive first when intervals are short.
    for (let i = 0; i < 10; i++) {
      const msg = await conn.next();
      if (msg === "2") {
        conn.send("3");
        continue;
      }
      connectAnswer = msg;
      break;
    }
    if (typeof connectAnswer !== "string" || !connectAnswer.startsWith("40")) {
      throw new Error(`unexpected answer to CONNECT: ${connectAnswer}`);
    }
  }
  conn.open = open;
  conn.connectAnswer = connectAnswer;
  return conn;
}
