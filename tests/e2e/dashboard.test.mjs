// Browser end-to-end test of swarmcast.dash with the SwarmBot demo, in Debian's headless
// chromium driven by playwright-core. Run: bash scripts/test-e2e.sh (installs first), or
// SWARMBOT_PYTHON=.venv/bin/python node --test tests/e2e/dashboard.test.mjs
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ROOT, launchBrowser, machineLoad, percentile, sleep, startDemo, until, watchErrors } from "./lib.mjs";

// The push delay's p99 on this page, against the 30 ms target: printed with the load
// average (and recorded in docs/dash.md: 12.9-17.5 ms in 8 of 8 runs at a load average
// of 0.3-1.5 on the development machine, since the graphs are drawn on canvas). Asserted
// on a quiet machine (1-min load average below 0.75 per core) and with
// SWARMCAST_E2E_STRICT=1; on a loaded one p99 must stay under 1 s (a broken path): a
// build starting next to the browser stalls its main thread for whole tenths of a second
// (seen: p99 481 ms, 17 tasks over 50 ms up to 413 ms, at a load average of 5).
const DOM_DELAY_P99_TARGET_MS = 30;
const DOM_DELAY_P99_QUIET_MS = DOM_DELAY_P99_TARGET_MS;
const DOM_DELAY_P99_LOADED_MS = 1000;
const QUIET_LOAD_PER_CORE = 0.75;
const PROBES = 250;

let demo;
let browser;
let page;
let errors;

const indicatorState = () => page.locator(".swarmcast-indicator").first().getAttribute("data-state");
const indicatorText = () => page.locator(".swarmcast-indicator").first().innerText();

async function waitState(state, timeout = 15000) {
  await until(async () => (await indicatorState()) === state, { timeout, what: `indicator ${state}` });
}

/** Connected and upgraded to WebSocket. A connection starts on long-polling and upgrades a
 * moment later. Seen on this loaded machine (2 of 8 runs): the server stopped right after
 * a reconnection, and the page still "connected" over long-polling 5 s later (engine
 * readyState "open"), most likely stopped in the middle of the upgrade, when
 * socket.io-client has paused polling; a python-socketio polling client notices the same
 * stop at once. The tests below are about a WebSocket connection: they stop the server
 * under one. */
async function waitWebSocket(timeout = 15000) {
  await until(
    async () =>
      (await indicatorState()) === "connected" &&
      (await page.locator(".swarmcast-indicator").first().getAttribute("data-transport")) === "websocket",
    { timeout, what: "connected over WebSocket" },
  );
}

/** For each of the four graph canvases: the samples it last drew and whether it has ink. */
async function graphs(p) {
  return p.evaluate(() =>
    ["g-eps", "g-tpm", "g-queue", "g-lat"].map((id) => {
      const c = document.getElementById(id);
      const px = c && c.width ? c.getContext("2d").getImageData(0, 0, c.width, c.height).data : [];
      let ink = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]) ink += 1;
      return { id, samples: Number(c?.getAttribute("data-samples") ?? -1), ink };
    }),
  );
}

/** The activity log's entries of one burst tag, oldest first, as burst indexes. */
async function burstIndexes(p, tag) {
  return p.evaluate((tag) => {
    const text = document.getElementById("activity-lines")?.textContent || "";
    const re = new RegExp(`\\b${tag} (\\d+)/\\d+$`);
    return text
      .split("\n")
      .map((line) => re.exec(line))
      .filter(Boolean)
      .map((m) => Number(m[1]) - 1)
      .reverse(); // the log shows the newest first
  }, tag);
}

async function expectBurst(p, tag, n, timeout = 15000) {
  const got = await until(
    async () => {
      const idx = await burstIndexes(p, tag);
      return idx.length >= n ? idx : false;
    },
    { timeout, what: `${n} entries of ${tag} in the activity log` },
  );
  assert.deepEqual(got, [...Array(n).keys()], `${tag}: every event, once, in order`);
}

async function agentRow(p, agent) {
  return p.evaluate((agent) => {
    const row = document.querySelector(`#agents-table [data-agent="${agent}"]`);
    return row ? { status: row.getAttribute("data-status"), text: row.innerText } : null;
  }, agent);
}

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
  page = await browser.newPage();
  errors = watchErrors(page);
  await page.goto(demo.base + "/");
});

after(async () => {
  await browser?.close();
  await demo?.stop();
});

test("the dashboard loads, connects over WebSocket, with no console errors", async () => {
  await waitState("connected");
  await until(async () => (await page.locator("#agents-table [data-agent]").count()) === 8, { what: "8 agent rows" });
  await until(async () => (await page.locator("#activity-lines").textContent()).length > 0, { what: "activity" });
  await until(async () => (await page.locator("#task-board [data-task]").count()) > 0, { what: "cards on the task board" });
  // The metrics history (replayed at connect) and what follows, drawn on the four canvases.
  await until(async () => (await graphs(page)).every((g) => g.samples > 0 && g.ink > 500), { what: "the four graphs drawn" });
  assert.equal(await page.locator(".swarmcast-indicator").first().getAttribute("data-transport"), "websocket");
  assert.equal(await page.evaluate(() => typeof window.io), "undefined", "the glue must not leak window.io");
  assert.equal(await page.evaluate(() => typeof window.swarmcastDash.io), "function");
  assert.match(await indicatorText(), /Connected/);
  assert.deepEqual(errors, []);
});

test("an agent state change made in Python reaches the DOM (delay from the emit timestamp)", async () => {
  const paused = await demo.control("pause");
  assert.ok(paused.idle, "agents went idle");
  const loadBefore = await machineLoad();
  await page.evaluate(() => {
    const samples = new Map();
    window.__probe = samples;
    // Main-thread tasks over 50 ms meanwhile (what delays a push update most).
    window.__longTasks = [];
    try {
      new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__longTasks.push(e.duration))).observe({ type: "longtask" });
    } catch {
      /* no Long Tasks API */
    }
    const table = document.getElementById("agents-table");
    const observer = new MutationObserver(() => {
      const row = table.querySelector('[data-agent="researcher-1"]');
      const probe = row && row.getAttribute("data-probe");
      // "" is the agent's own state coming back after the probe: its timestamp is from
      // before the probe began, not an emit to measure.
      if (probe === null || probe === undefined || probe === "" || samples.has(probe)) return;
      // Epoch ms in the page minus the server's emit timestamp (same machine clock).
      samples.set(probe, performance.timeOrigin + performance.now() - Number(row.getAttribute("data-ts")));
    });
    observer.observe(table, { subtree: true, childList: true, attributes: true, characterData: true });
    window.__probeObserver = observer;
  });
  await demo.control("probe", { n: PROBES, interval_ms: 50, agent: "researcher-1" });
  // Until the agent is back to its own state (the probe's end), then what was seen.
  await sleep(PROBES * 50);
  await until(async () => !/probe/.test((await agentRow(page, "researcher-1"))?.text || "probe"), {
    timeout: 30000,
    what: "the end of the probe",
  });
  const { delays, longTasks } = await page.evaluate(() => {
    window.__probeObserver.disconnect();
    return { delays: [...window.__probe.values()], longTasks: window.__longTasks };
  });
  const loadAfter = await machineLoad();
  delays.sort((a, b) => a - b);
  const p50 = percentile(delays, 50);
  const p95 = percentile(delays, 95);
  const p99 = percentile(delays, 99);
  const load = Math.max(loadBefore.load1, loadAfter.load1) / loadBefore.cores;
  const quiet = load < QUIET_LOAD_PER_CORE;
  const bound =
    process.env.SWARMCAST_E2E_STRICT === "1" ? DOM_DELAY_P99_TARGET_MS : quiet ? DOM_DELAY_P99_QUIET_MS : DOM_DELAY_P99_LOADED_MS;
  console.log(
    `SwarmBot DOM delay (server emit -> DOM mutation) over ${delays.length} updates: ` +
      `p50 ${p50.toFixed(2)} ms, p95 ${p95.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${delays[delays.length - 1].toFixed(2)} ms; ` +
      `${longTasks.length} main-thread tasks over 50 ms${longTasks.length ? ` (longest ${Math.max(...longTasks).toFixed(0)} ms)` : ""}; ` +
      `load average ${loadBefore.load1.toFixed(2)} before, ${loadAfter.load1.toFixed(2)} after, ${loadBefore.cores} cores` +
      ` (${quiet ? "quiet" : "loaded"}; target ${DOM_DELAY_P99_TARGET_MS} ms ${p99 < DOM_DELAY_P99_TARGET_MS ? "met" : "NOT met"}, bound ${bound} ms)`,
  );
  assert.ok(delays.length >= 200, `at least 200 of ${PROBES} updates observed (got ${delays.length})`);
  assert.ok(delays.length <= PROBES, `only the probe's updates measured (got ${delays.length})`);
  assert.ok(p99 < bound, `p99 ${p99.toFixed(2)} ms under ${bound} ms`);
  await until(async () => (await agentRow(page, "researcher-1"))?.status === "idle", { what: "researcher-1 back to idle" });
});

test("a burst of 200 events reaches the activity log, none lost, in order", async () => {
  await demo.control("burst", { n: 200, tag: "b1" });
  await expectBurst(page, "b1", 200);
});

test("the server drops the connection: reconnecting, then connected, nothing lost", async () => {
  // 1. The server closes the session ("io server disconnect"): the glue comes back.
  const kicked = await demo.control("realtime/kick");
  assert.ok(kicked.kicked >= 1);
  await until(async () => (await indicatorState()) !== "connected", { timeout: 5000, every: 10, what: "not connected" });
  await waitWebSocket();

  // 2. The server goes away (restart): reconnecting (attempt n, next retry), then
  // connected; what was published meanwhile arrives, in order.
  await demo.control("realtime/stop");
  await waitState("reconnecting", 5000);
  await demo.control("burst", { n: 50, tag: "b2" });
  await demo.control("set-agent", { agent: "coder-2", status: "blocked", note: "while-away" });
  const seen = await until(
    async () => {
      const text = await indicatorText();
      return /attempt \d+/.test(text) && /next retry in/.test(text) ? text : false;
    },
    { timeout: 3000, every: 20, what: "attempt and next retry shown" },
  );
  console.log(`indicator while the server was down: ${seen.replace(/\s+/g, " ")}`);
  await demo.control("realtime/start");
  await waitState("connected", 15000);
  await expectBurst(page, "b2", 50);
  await until(async () => {
    const row = await agentRow(page, "coder-2");
    return row?.status === "blocked" && row.text.includes("while-away");
  }, { what: "the state set while away" });
  await demo.control("burst", { n: 20, tag: "b3" });
  await expectBurst(page, "b3", 20);
  assert.deepEqual(errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|socket\.io/.test(e)), []);
});

test("with the realtime server down, the page falls back to HTTP polling and recovers", async () => {
  const snapshotRequests = [];
  page.on("request", (r) => {
    if (r.url().includes("/_swarmcast/snapshot")) snapshotRequests.push(Date.now());
  });
  await waitWebSocket();
  await demo.control("realtime/stop");
  await waitState("fallback", 10000);
  assert.match(await indicatorText(), /Polling fallback/);
  await demo.control("set-agent", { agent: "tester-1", status: "blocked", note: "fallback-1" });
  await until(async () => {
    const row = await agentRow(page, "tester-1");
    return row?.status === "blocked" && row.text.includes("fallback-1");
  }, { timeout: 5000, what: "a state change over the fallback" });
  await demo.control("burst", { n: 30, tag: "b4" });
  await expectBurst(page, "b4", 30, 5000);
  assert.ok(snapshotRequests.length >= 2, "the snapshot endpoint was polled");

  await demo.control("realtime/start");
  await waitState("connected", 15000);
  await sleep(300);
  const atRecovery = snapshotRequests.length;
  await demo.control("set-agent", { agent: "tester-1", status: "working", note: "push-again" });
  await until(async () => (await agentRow(page, "tester-1"))?.text.includes("push-again"), { what: "push again" });
  await sleep(2500);
  assert.equal(snapshotRequests.length, atRecovery, "interval polling stopped once push returned");
  assert.equal(
    await page.evaluate(() => window.swarmcastDash.client("rt").status.fallback),
    false,
  );
});

test("with WebSocket blocked, the page updates over Socket.IO long-polling", async () => {
  const p2 = await browser.newPage();
  const errors2 = watchErrors(p2);
  // Every WebSocket to the realtime server is refused: the upgrade fails, polling stays.
  await p2.routeWebSocket(/\/socket\.io\//, (ws) => ws.close({ code: 1011, reason: "blocked by the test" }));
  await p2.goto(demo.base + "/");
  await until(async () => (await p2.locator(".swarmcast-indicator").first().getAttribute("data-state")) === "connected", {
    timeout: 15000,
    what: "connected over polling",
  });
  await sleep(1500); // give the failed upgrade time to be final
  assert.equal(await p2.locator(".swarmcast-indicator").first().getAttribute("data-transport"), "polling");
  await demo.control("set-agent", { agent: "reviewer-2", status: "blocked", note: "over-polling" });
  await until(async () => (await agentRow(p2, "reviewer-2"))?.text.includes("over-polling"), {
    what: "a state change over long-polling",
  });
  await demo.control("burst", { n: 100, tag: "b5" });
  await expectBurst(p2, "b5", 100);
  assert.equal(await p2.locator(".swarmcast-indicator").first().getAttribute("data-transport"), "polling");
  assert.deepEqual(errors2.filter((e) => !/WebSocket/.test(e)), []);
  await p2.close();
});

test("the switch puts the same page into 1-second polling and back", async () => {
  const updates = [];
  const onRequest = (r) => {
    if (r.url().includes("/_dash-update-component")) updates.push(Date.now());
  };
  page.on("request", onRequest);
  await page.locator("#mode label", { hasText: "Polling" }).click();
  await waitState("paused", 5000);
  // Push is paused: from now on only the polling callback's samples draw the graphs.
  await page.evaluate(() => document.querySelectorAll("#graphs canvas").forEach((c) => c.setAttribute("data-samples", "-1")));
  // The polling callback renders the coordinator's own view: its activity log.
  await demo.control("burst", { n: 5, tag: "p1" });
  await expectBurst(page, "p1", 5, 5000);
  // ... and paints its agents table and task board (HTML through a store, painted as in
  // push mode): coder-2 was set "blocked" by push only, the coordinator has its own.
  await until(
    async () => {
      const view = await (await fetch(demo.base + "/_swarmbot/test/view")).json();
      for (const [id, agent] of Object.entries(view.agents)) {
        if ((await agentRow(page, id))?.status !== agent.status) return false;
      }
      const tasks = await page.locator("#task-board [data-task]").evaluateAll((els) => els.map((e) => e.dataset.task));
      return tasks.length > 0 && tasks.every((id) => id in view.tasks);
    },
    { timeout: 5000, what: "the agents table and task board painted from the coordinator's view" },
  );
  await until(async () => (await graphs(page)).every((g) => g.samples > 0 && g.ink > 500), {
    timeout: 5000,
    what: "the graphs drawn from the polling callback's samples",
  });
  const since = Date.now();
  await sleep(3000);
  const recent = updates.filter((t) => t >= since).length;
  assert.ok(recent >= 2 && recent <= 5, `about one callback request a second (${recent} in 3 s)`);
  await page.locator("#mode label", { hasText: "Push" }).click();
  await waitState("connected", 10000);
  await sleep(500);
  const pushSince = Date.now();
  await demo.control("set-agent", { agent: "tester-2", status: "working", note: "seen-by-push" });
  await until(async () => (await agentRow(page, "tester-2"))?.text.includes("seen-by-push"), { what: "push again" });
  await sleep(2000);
  assert.equal(updates.filter((t) => t >= pushSince).length, 0, "no callback requests in push mode");
  page.off("request", onRequest);
});

test("screenshot of the dashboard (a fresh demo, 25 s of agent activity)", async () => {
  const fresh = await startDemo();
  try {
    const p3 = await browser.newPage();
    const errors3 = watchErrors(p3);
    await p3.goto(fresh.base + "/");
    await until(async () => (await p3.locator(".swarmcast-indicator").first().getAttribute("data-state")) === "connected", {
      what: "connected",
    });
    await sleep(25000);
    // Under target/, never over the tracked docs/images/dashboard.png: a test run writes
    // nothing that git tracks. Copy it there by hand to refresh the picture in docs/dash.md.
    const dir = join(ROOT, "target/e2e");
    mkdirSync(dir, { recursive: true });
    await p3.screenshot({ path: join(dir, "dashboard.png"), fullPage: true });
    console.log(`screenshot: ${join(dir, "dashboard.png")}`);
    assert.deepEqual(errors3, []);
    await p3.close();
  } finally {
    await fresh.stop();
  }
  assert.deepEqual(errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|socket\.io/.test(e)), []);
});
