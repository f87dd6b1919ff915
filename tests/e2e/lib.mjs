// Shared pieces of the browser tests: start the SwarmBot demo (with its test-control
// endpoints) on free loopback ports, launch Debian's headless chromium through
// playwright-core, and drive the demo over HTTP.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PYTHON = process.env.SWARMBOT_PYTHON || join(ROOT, ".venv/bin/python");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Poll `check` every `every` ms until it returns a truthy value or `timeout` ms pass. */
export async function until(check, { timeout = 10000, every = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
}

/**
 * Start a Python program of the test (`args`: script and arguments) with the project's
 * Python, its output collected; resolves once `ready(base)` gives a truthy value (the
 * app answers) with `{ child, base, port, ready, output(), stop(signal) }`. `stop` ends
 * the process (SIGTERM, SIGKILL after 8 s) and resolves once it is gone.
 */
export async function startPython({ args, port, cwd = ROOT, env = {}, ready, what = "the app to answer", every = 200 }) {
  port = port || (await freePort());
  const child = spawn(PYTHON, args(port), {
    cwd,
    env: { ...process.env, PYTHONUNBUFFERED: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.on("exit", (code, signal) => r(code ?? signal)));
  const base = `http://127.0.0.1:${port}`;
  let answer;
  try {
    answer = await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`the app exited with ${child.exitCode}:\n${output}`);
        return ready(base);
      },
      { timeout: 30000, every, what },
    );
  } catch (e) {
    child.kill("SIGKILL");
    throw new Error(`${e.message}\n--- app output ---\n${output}`);
  }
  return {
    base,
    port,
    child,
    ready: answer,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const code = await Promise.race([exited, sleep(8000).then(() => "timeout")]);
        if (code === "timeout") {
          child.kill("SIGKILL");
          await exited;
        }
      }
    },
  };
}

/** Start examples/swarmbot/app.py; resolves once Dash answers. */
export async function startDemo({ args = [], env = {} } = {}) {
  const realtimePort = await freePort();
  const app = await startPython({
    args: (port) => [
      join(ROOT, "examples/swarmbot/app.py"),
      "--port", String(port), "--realtime-port", String(realtimePort), "--test-control", "--seed", "7", ...args,
    ],
    env,
    ready: async (base) => (await fetch(base + "/_swarmbot/test/view")).ok,
    what: "the demo to answer",
  });
  return {
    ...app,
    realtimePort,
    async control(path, params = {}) {
      const q = new URLSearchParams(params).toString();
      const r = await fetch(`${app.base}/_swarmbot/test/${path}${q ? "?" + q : ""}`, { method: "POST" });
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
      return r.json();
    },
  };
}

/** Headless chromium on a fresh profile (its --user-data-dir, removed by `close()`). */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "swarmcast-e2e-"));
  // launchPersistentContext passes `--user-data-dir=<profile>` itself (playwright refuses
  // it among `args`).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async newPage() {
      return context.newPage();
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Collects console errors and page errors of a page. */
export function watchErrors(page) {
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  return errors;
}

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Start tests/e2e/dash_light_app.py (a light Dash page, swarmcast and its glue vs plain
 * set_props glue, one port) on `port` (a free one by default); resolves once it answers. */
export async function startLightApp({ port, args = [] } = {}) {
  const app = await startPython({
    args: (p) => [join(ROOT, "tests/e2e/dash_light_app.py"), "--port", String(p), ...args],
    port,
    ready: async (base) => {
      const r = await fetch(base + "/_light/status");
      return r.ok ? r.json() : false;
    },
    what: "the light app to answer",
    every: 100,
  });
  return {
    ...app,
    epoch: app.ready.epoch,
    async post(path, params = {}) {
      const q = new URLSearchParams(params).toString();
      const r = await fetch(`${app.base}/_light/${path}${q ? "?" + q : ""}`, { method: "POST" });
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
      return r.json();
    },
    async status() {
      return (await fetch(app.base + "/_light/status")).json();
    },
  };
}

/** The 1-minute load average and the number of cores (to say how noisy a measurement is). */
export async function machineLoad() {
  const os = await import("node:os");
  return { load1: os.loadavg()[0], load5: os.loadavg()[1], cores: os.availableParallelism ? os.availableParallelism() : os.cpus().length };
}
