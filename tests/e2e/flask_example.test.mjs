// A Flask-SocketIO style example app (tests/e2e/flask_example/app.py), served by
// swarmcast with `socketio.run(app)`: in headless chromium the page loads from the one
// port, its io() connects to its own origin and upgrades to WebSocket, and every button
// works. Run: bash scripts/test-e2e.sh.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { PYTHON, ROOT, freePort, launchBrowser, sleep, until, watchErrors } from "./lib.mjs";

let child;
let browser;
let page;
let errors;
let base;
let output = "";

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(PYTHON, [join(ROOT, "tests/e2e/flask_example/app.py"), String(port)], {
    cwd: ROOT,
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`the app exited:\n${output}`);
      return (await fetch(base + "/")).ok;
    },
    { timeout: 30000, every: 200, what: "the app to answer" },
  );
  browser = await launchBrowser();
  page = await browser.newPage();
  errors = watchErrors(page);
});

after(async () => {
  await browser?.close();
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await Promise.race([new Promise((r) => child.on("exit", r)), sleep(5000)]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});

const logLines = () => page.evaluate(() => [...document.querySelectorAll("#log div")].map((d) => d.textContent));

async function expectLog(pattern, what) {
  await until(async () => (await logLines()).some((l) => pattern.test(l)), { what });
}

test("the page and Socket.IO share one port; every button works", { timeout: 60000 }, async () => {
  await page.goto(base + "/");
  assert.equal(await page.textContent("#mode"), "threading");
  await expectLog(/Received #1: I'm connected!/, "the connect message");
  await until(
    () => page.evaluate(() => window.socket.connected && window.socket.io.engine.transport.name === "websocket"),
    { what: "the upgrade to WebSocket on the page's own origin" },
  );
  await page.click("#echo_btn");
  await expectLog(/Received #2: hello/, "echo");
  await page.click("#broadcast_btn");
  await expectLog(/Received #3: to all/, "broadcast");
  await page.click("#join_btn");
  await expectLog(/In rooms: .*r1/, "join room");
  await page.click("#room_btn");
  await expectLog(/Received #\d+: to the room/, "send to the room");
  await page.click("#leave_btn");
  await expectLog(/In rooms: (?!.*r1)/, "leave room");
  await page.click("#join_btn");
  await page.click("#close_btn");
  await expectLog(/Room r1 is closing\./, "close room");
  await page.click("#disconnect_btn");
  await expectLog(/Disconnected!/, "the last message before the disconnect");
  await expectLog(/^Disconnected$/, "the disconnect");
  assert.deepEqual(errors, [], `page errors: ${errors.join("\n")}`);
});
