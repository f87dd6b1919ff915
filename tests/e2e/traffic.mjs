// Traffic of the SwarmBot dashboard in push mode vs 1-second polling mode, over the same
// stretch of agent activity: two pages of one demo side by side (?mode=push and
// ?mode=poll), counted on the wire by playwright after a warm-up.
//
//   node tests/e2e/traffic.mjs [--seconds 60] [--warmup 70] [--json]
//   (SWARMBOT_PYTHON=<python with swarmcast and dash>, default .venv/bin/python)
//
// HTTP: every request the page makes after the warm-up (Dash callbacks, the snapshot
// endpoint, Socket.IO long-polling), request + response headers and bodies as
// playwright's request.sizes() reports them. WebSocket: every frame both ways, payload
// plus RFC 6455 framing (2, 4 or 10 bytes; +4 mask client to server). TCP/IP overhead is
// not counted.
import { launchBrowser, sleep, startDemo } from "./lib.mjs";

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function frameBytes(payload, masked) {
  const n = typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
  return n + (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

function meter(page, window) {
  const m = { http_requests: 0, http_bytes: 0, ws_frames: 0, ws_bytes: 0, paths: {} };
  const inWindow = () => window.on;
  page.on("requestfinished", async (request) => {
    if (!inWindow()) return;
    const sizes = await request.sizes().catch(() => null);
    m.http_requests += 1;
    if (sizes) m.http_bytes += sizes.requestHeadersSize + sizes.requestBodySize + sizes.responseHeadersSize + sizes.responseBodySize;
    const path = new URL(request.url()).pathname;
    m.paths[path] = (m.paths[path] || 0) + 1;
  });
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => {
      if (!inWindow()) return;
      m.ws_frames += 1;
      m.ws_bytes += frameBytes(f.payload, true);
    });
    ws.on("framereceived", (f) => {
      if (!inWindow()) return;
      m.ws_frames += 1;
      m.ws_bytes += frameBytes(f.payload, false);
    });
  });
  return m;
}

const seconds = option("seconds", 60);
// Steady state: after 70 s the pages' windows are full (the activity log's 200 lines,
// the graphs' 60 s of samples), so each mode carries what it will carry from then on.
const warmup = option("warmup", 70);
const demo = await startDemo();
const browser = await launchBrowser();
try {
  const window = { on: false };
  const push = await browser.newPage();
  const poll = await browser.newPage();
  const pm = meter(push, window);
  const qm = meter(poll, window);
  await push.goto(`${demo.base}/?mode=push`);
  await poll.goto(`${demo.base}/?mode=poll`);
  await sleep(warmup * 1000);
  const state = await push.locator(".swarmcast-indicator").first().getAttribute("data-state");
  if (state !== "connected") throw new Error(`push page not connected (${state})`);
  window.on = true;
  const t0 = Date.now();
  await sleep(seconds * 1000);
  window.on = false;
  await sleep(1500); // let finished requests report their sizes
  const minutes = (Date.now() - t0) / 60000;
  const total = (m) => m.http_bytes + m.ws_bytes;
  const result = {
    seconds,
    push: { ...pm, bytes: total(pm) },
    poll: { ...qm, bytes: total(qm) },
  };
  result.reduction = {
    http_requests: 1 - pm.http_requests / qm.http_requests,
    messages: 1 - (pm.http_requests + pm.ws_frames) / (qm.http_requests + qm.ws_frames),
    bytes: 1 - total(pm) / total(qm),
  };
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    const row = (name, m) =>
      `${name.padEnd(20)}${String(m.http_requests).padStart(10)}${String(m.ws_frames).padStart(12)}` +
      `${(total(m) / 1024).toFixed(1).padStart(12)} KB${(total(m) / 1024 / minutes).toFixed(1).padStart(12)} KB/min`;
    console.log(`traffic over ${seconds} s of the same agent activity (after a ${warmup} s warm-up):`);
    console.log(`${"".padEnd(20)}${"HTTP req".padStart(10)}${"WS frames".padStart(12)}${"bytes".padStart(15)}${"rate".padStart(19)}`);
    console.log(row("push (swarmcast)", pm));
    console.log(row("poll (1 s Interval)", qm));
    console.log(
      `reduction: HTTP requests ${(100 * result.reduction.http_requests).toFixed(1)}%, ` +
        `requests + WS frames ${(100 * result.reduction.messages).toFixed(1)}%, bytes ${(100 * result.reduction.bytes).toFixed(1)}%`,
    );
    console.log(`push paths: ${JSON.stringify(pm.paths)}  poll paths: ${JSON.stringify(qm.paths)}`);
  }
} finally {
  await browser.close();
  await demo.stop();
}
