// A Flask-SocketIO style example app (tests/e2e/flask_example/app.py), served by
// swarmcast with `socketio.run(app)`: in headless chromium the page loads from the one
// port, its io() connects to its own origin and upgrades to WebSocket, and every button
// works. Run: bash scripts/test-e2e.sh.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ROOT, launchBrowser, startPython, until, watchErrors } from "./lib.mjs";

let app;
let browser;
let page;
let errors;
let base;

before(async () => {
  app = await startPython({
    args: (port) => [join(ROOT, "tests/e2e/flask_example/app.py"), String(port)],
    ready: async (url) => (await fetch(url + "/")).ok,
  });
  base = app.base;
  browser = await launchBrowser();
  page = await browser.newPage();
  errors = watchErrors(page);
});

after(async () => {
  await browser?.close();
  await app?.stop();
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
