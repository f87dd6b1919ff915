// Push latency on a light Dash page, swarmcast.dash against the plain set_props glue a
// Flask-SocketIO + Dash user writes, measured in the same run, in Debian's headless
// chromium (tests/e2e/dash_light_app.py serves both pages and the push on one port).
// Run: bash scripts/test-e2e.sh, or SWARMBOT_PYTHON=.venv/bin/python node --test tests/e2e/dash_light.test.mjs
//
// What is measured: the server stamps each event with time.time() right before the emit;
// a MutationObserver on the page's <pre id="out"> takes performance.timeOrigin +
// performance.now() when the event's line first appears in the DOM (same machine, same
// clock). Path: swarmcast server -> WebSocket -> glue -> dash_clientside.set_props ->
// clientside callback -> React commit. Both pages render the same 300 lines the same way;
// only the glue differs. Both pages are open at once, each on a Socket.IO namespace of its
// own, and get their ticks in turns (each page 25 a second, the other's half an interval
// later), so that the machine's load at any moment weighs on both alike.
//
// This machine is shared (2 cores, other engineers' Rust builds; a 1-min load average of
// 2.5-3.5 while this was written, and then p99 moves between 12 and 60 ms from run to run
// for either glue): the load average is printed with the numbers. The assertions compare
// swarmcast with the baseline of the same run (p50 within 3 ms of it; p99 within 1.5x +
// 5 ms of it on a quiet machine, 2x + 10 ms on a loaded one) and bound swarmcast's p99 by
// the 20 ms target when the machine is quiet (1-min load average below 0.75 per core), or
// by 250 ms when it is not (CI's 2-core box under a parallel build: a build starting next
// to the browser stalls its main thread for tenths of a second, both pages alike, which the
// comparison with the baseline absorbs); SWARMCAST_E2E_STRICT=1 makes the quiet machine's
// bounds apply whatever the load.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser, machineLoad, percentile, sleep, startLightApp, until, watchErrors } from "./lib.mjs";

const TICKS = 300; // per glue
const TICK_INTERVAL_MS = 40; // 25 a second
const BURST = 200;
const TARGET_P99_MS = 20;
const LOADED_P99_MS = 250;
const QUIET_LOAD_PER_CORE = 0.75;

let app;
let browser;
const results = {
  swarmcast: { ticks: [], bursts: [] },
  plain: { ticks: [], bursts: [] },
};
let loadBefore;

before(async () => {
  loadBefore = await machineLoad();
  app = await startLightApp();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
});

async function openPage(glue) {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${app.base}/?glue=${glue}`);
  await until(
    () =>
      page.evaluate((glue) => {
        if (glue === "plain") {
          const s = window.plainSocket;
          return !!(s && s.connected && s.io.engine.transport.name === "websocket" && document.getElementById("out"));
        }
        const c = window.swarmcastDash && window.swarmcastDash.client("rt");
        return !!(c && c.status.state === "connected" && c.status.transport === "websocket" && document.getElementById("out"));
      }, glue),
    { timeout: 20000, what: `the ${glue} page connected over WebSocket` },
  );
  // Every line's first appearance in the DOM: {key: "RUN I", t: page time, ts: emit time}.
  await page.evaluate(() => {
    const out = document.getElementById("out");
    const seen = (window.__seen = { first: new Map(), order: [], commits: 0, lines: [] });
    new MutationObserver(() => {
      const t = performance.timeOrigin + performance.now();
      seen.commits += 1;
      const lines = out.textContent.split("\n");
      seen.lines = lines;
      for (const line of lines) {
        const sp = line.lastIndexOf(" ");
        if (sp < 0) continue;
        const key = line.slice(0, sp);
        if (seen.first.has(key)) continue;
        seen.first.set(key, { t, ts: Number(line.slice(sp + 1)) });
        seen.order.push(key);
      }
    }).observe(out, { subtree: true, childList: true, characterData: true });
  });
  return { page, errors };
}

/** What the page showed of `run`: its indexes in order of first appearance, with times. */
function shown(page, run) {
  return page.evaluate((run) => {
    const s = window.__seen;
    const prefix = run + " ";
    return s.order
      .filter((k) => k.startsWith(prefix))
      .map((k) => ({ i: Number(k.slice(prefix.length)), ...s.first.get(k) }));
  }, run);
}

async function expectAll(page, run, n, timeout) {
  try {
    await until(async () => (await shown(page, run)).length >= n, { timeout, every: 50, what: `${n} lines of ${run}` });
  } catch {
    /* asserted by the caller with what arrived */
  }
  return shown(page, run);
}

async function burst(glue, page) {
  const event = glue === "plain" ? "ptick" : "tick";
  const run = `${glue}-burst`;
  const commitsBefore = await page.evaluate(() => window.__seen.commits);
  await app.post("burst", { event, run, n: BURST });
  const got = await expectAll(page, run, BURST, 15000);
  await sleep(200);
  const commits = (await page.evaluate(() => window.__seen.commits)) - commitsBefore;
  const firstTs = Math.min(...got.map((e) => e.ts));
  results[glue].bursts.push({
    n: got.length,
    inOrder: got.every((e, k) => e.i === k),
    complete_ms: got.length ? Math.max(...got.map((e) => e.t)) - firstTs : NaN,
    commits,
    indexes: got.map((e) => e.i),
  });
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] };
}

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : String(x));

test("both pages get ticks in turns (each 25/s, half an interval apart), then a burst each", async () => {
  const sc = await openPage("swarmcast");
  const plain = await openPage("plain");
  await sleep(300);
  await app.post("ticks", { events: "tick,ptick", run: "t", n: TICKS, interval_ms: TICK_INTERVAL_MS });
  await sleep(TICKS * TICK_INTERVAL_MS);
  await until(async () => !(await app.status()).emitting, { timeout: 10000, what: "the ticks emitted" });
  for (const [glue, { page }] of [["swarmcast", sc], ["plain", plain]]) {
    const run = `t-${glue === "plain" ? "ptick" : "tick"}`;
    const ticks = await expectAll(page, run, TICKS, 5000);
    results[glue].ticks = ticks.map((e) => e.t - e.ts);
    assert.deepEqual(ticks.map((e) => e.i), [...Array(TICKS).keys()], `${glue}: every tick shown once, in order`);
  }
  // The bursts one page at a time: a burst saturates the page that gets it.
  await burst("swarmcast", sc.page);
  await sleep(300);
  await burst("plain", plain.page);
  assert.deepEqual(sc.errors, [], "swarmcast page: no console errors");
  assert.deepEqual(plain.errors, [], "plain page: no console errors");
  await sc.page.close();
  await plain.page.close();
});

test("swarmcast.dash: emit -> DOM p99 on the light page, against the baseline of the same run", async () => {
  const loadAfter = await machineLoad();
  const sc = stats(results.swarmcast.ticks);
  const plain = stats(results.plain.ticks);
  const line = (name, s) =>
    `${name.padEnd(22)} n ${s.n}  p50 ${fmt(s.p50)} ms  p95 ${fmt(s.p95)} ms  p99 ${fmt(s.p99)} ms  max ${fmt(s.max)} ms`;
  const burstLine = (name, b) =>
    `${name.padEnd(22)} burst of ${BURST}: ${b.n} shown, ${b.inOrder ? "in order" : "OUT OF ORDER"}, ` +
    `emit of the first -> last in the DOM ${fmt(b.complete_ms)} ms, ${b.commits} DOM commits`;
  console.log(
    `light page, emit -> DOM, ${TICKS} ticks per glue at ${1000 / TICK_INTERVAL_MS}/s ` +
      `(load average ${loadBefore.load1.toFixed(2)} before, ${loadAfter.load1.toFixed(2)} after, ${loadBefore.cores} cores)\n` +
      `${line("swarmcast.dash", sc)}\n${line("plain set_props glue", plain)}\n` +
      `${burstLine("swarmcast.dash", results.swarmcast.bursts[0])}\n${burstLine("plain set_props glue", results.plain.bursts[0])}`,
  );
  const burst = results.swarmcast.bursts[0];
  assert.deepEqual(burst.indexes, [...Array(BURST).keys()], "swarmcast.dash: the burst complete, once each, in order");
  assert.equal(sc.n, TICKS);
  const load = Math.max(loadBefore.load1, loadAfter.load1) / loadBefore.cores;
  const strict = process.env.SWARMCAST_E2E_STRICT === "1" || load < QUIET_LOAD_PER_CORE;
  const bound = strict ? TARGET_P99_MS : LOADED_P99_MS;
  if (!strict) console.log(`load ${load.toFixed(2)} per core: a loaded machine, p99 bound ${bound} ms (target ${TARGET_P99_MS} ms)`);
  assert.ok(sc.p99 < bound, `swarmcast.dash p99 ${fmt(sc.p99)} ms < ${bound} ms`);
  const [factor, plus] = strict ? [1.5, 5] : [2, 10];
  assert.ok(
    sc.p99 <= plain.p99 * factor + plus,
    `swarmcast.dash p99 ${fmt(sc.p99)} ms within ${factor}x + ${plus} ms of the baseline's ${fmt(plain.p99)} ms`,
  );
  assert.ok(sc.p50 <= plain.p50 + 3, `swarmcast.dash p50 ${fmt(sc.p50)} ms within 3 ms of the baseline's ${fmt(plain.p50)} ms`);
});
