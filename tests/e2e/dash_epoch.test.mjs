// No event lost, skipped or doubled across a restart of the whole publishing process (a new
// Bridge epoch: its ids start again at 1), in Debian's headless chromium. The process is
// tests/e2e/dash_light_app.py (Dash app, swarmcast server and Bridge in one process, one
// port); the page is its swarmcast.dash page, which shows every event of the store `tick`
// as a line `RUN I TS`. Run: bash scripts/test-e2e.sh, or
// SWARMBOT_PYTHON=.venv/bin/python node --test tests/e2e/dash_epoch.test.mjs
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser, sleep, startLightApp, until, watchErrors } from "./lib.mjs";

let browser;
let app; // the publishing process running now
let port;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop();
});

/** The page's lines, as "RUN I" (the last 300 events of the store, oldest first). */
const lines = (page) =>
  page.evaluate(() =>
    (document.getElementById("out")?.textContent || "")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(0, l.lastIndexOf(" "))),
  );

const state = (page) => page.evaluate(() => window.swarmcastDash.client("rt")?.status.state);

function expected(runs) {
  return runs.flatMap(([run, n]) => [...Array(n).keys()].map((i) => `${run} ${i}`));
}

/** Waits for the page to show `want` (lines "RUN I"), then checks it shows exactly that. */
async function expectLines(page, want, what) {
  try {
    await until(async () => (await lines(page)).length >= want.length, { timeout: 10000, what });
  } catch {
    /* compared below */
  }
  await sleep(500); // anything doubled or late would show by now
  assert.deepEqual(await lines(page), want, `${what}: every event once, in order`);
}

/** Restart the whole process: stop it, then a new one on the same port that publishes
 * `startup` events of `run` before any page can connect. */
async function restart(run, startup, signal = "SIGTERM") {
  const old = app;
  await old.stop(signal);
  app = await startLightApp({ port, args: ["--run", run, "--startup-events", String(startup)] });
  assert.notEqual(app.epoch, old.epoch, "a new process is a new epoch");
}

test("a restarted publisher's first events reach a page that reconnects (push)", async () => {
  app = await startLightApp();
  port = app.port;
  const page = await browser.newPage();
  const errors = watchErrors(page);
  await page.goto(`${app.base}/?glue=swarmcast`);
  await until(async () => (await state(page)) === "connected", { timeout: 15000, what: "connected" });
  // More events in the first epoch than the second will have published when the page is
  // back: the old code asked the new process for ids after 5 and got none, then jumped
  // to its last id.
  await app.post("burst", { event: "tick", run: "one", n: 5 });
  await expectLines(page, expected([["one", 5]]), "the first process's events");

  await restart("two", 3); // SIGTERM: the process ends; a new one publishes at start
  await until(async () => (await state(page)) === "connected", { timeout: 20000, what: "connected to the new process" });
  await expectLines(page, expected([["one", 5], ["two", 3]]), "the new process's first events");
  await app.post("burst", { event: "tick", run: "two-more", n: 4 });
  await expectLines(page, expected([["one", 5], ["two", 3], ["two-more", 4]]), "and what it publishes next");

  // A crash this time (SIGKILL), and the new process publishes before and after the page
  // is back, pushed events arriving while the page fetches what it missed.
  await restart("three", 2, "SIGKILL");
  await app.post("ticks", { events: "tick", run: "four", n: 20, interval_ms: 50 });
  await until(async () => (await state(page)) === "connected", { timeout: 20000, what: "connected after the crash" });
  await until(async () => !(await app.status()).emitting, { timeout: 10000, what: "the ticks emitted" });
  const all = expected([["one", 5], ["two", 3], ["two-more", 4], ["three", 2], ["four-tick", 20]]);
  await expectLines(page, all, "after a crash");
  assert.deepEqual(errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|socket\.io|_swarmcast/.test(e)), []);
  await page.close();
});

test("a restarted publisher's first events reach a page on the polling fallback, then push takes over", async () => {
  const page = await browser.newPage();
  await page.goto(`${app.base}/?glue=swarmcast`);
  await until(async () => (await state(page)) === "connected", { timeout: 15000, what: "connected" });
  await app.post("burst", { event: "tick", run: "five", n: 6 });
  // history=1: the page starts with the last event published before it connected.
  const first = ["four-tick 19", ...expected([["five", 6]])];
  await expectLines(page, first, "the first process's events");
  // Push cannot reach the server: every Socket.IO request of this page fails (polling
  // first, so no WebSocket either); only the snapshot endpoint's polls get through.
  await page.route(/\/socket\.io\//, (route) => route.abort());
  await restart("six", 3);
  await until(async () => (await state(page)) === "fallback", { timeout: 15000, what: "the polling fallback" });
  await app.post("burst", { event: "tick", run: "seven", n: 2 });
  await expectLines(page, [...first, ...expected([["six", 3], ["seven", 2]])], "polled from the new process");
  await page.unroute(/\/socket\.io\//);
  await until(async () => (await state(page)) === "connected", { timeout: 20000, what: "push again" });
  await app.post("burst", { event: "tick", run: "eight", n: 3 });
  await expectLines(page, [...first, ...expected([["six", 3], ["seven", 2], ["eight", 3]])], "push again, after the fallback");
  await page.close();
});

test("a burst right after a page connects does not push the history out of its window", async () => {
  // The page's catch-up answer is taken a second late, after a burst that reaches the
  // page first: its "last 1 event" would be the burst's last. The page asks again for
  // the event before its first push.
  await app.post("burst", { event: "tick", run: "nine", n: 2 });
  await app.post("catchup-delay", { ms: 1000 });
  try {
    const page = await browser.newPage();
    await page.goto(`${app.base}/?glue=swarmcast`);
    await until(async () => (await state(page)) === "connected", { timeout: 15000, what: "connected" });
    await app.post("burst", { event: "tick", run: "ten", n: 4 });
    await expectLines(page, ["nine 1", ...expected([["ten", 4]])], "history, then the burst");
    await page.close();
  } finally {
    await app.post("catchup-delay", { ms: 0 });
  }
});
