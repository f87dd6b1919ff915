// Flask-SocketIO's own example app (tests/e2e/flask_socketio_example: example/app.py
// and its template, copied unmodified but for the import, see NOTICE), served by
// swarmcast: in headless chromium the page loads from the one port, its io() connects
// to its own origin over WebSocket, and every form of the page works (echo, broadcast,
// join, leave, send to room, close room, disconnect), as with Flask-SocketIO.
//
// The page loads jQuery 3.5.1 and socket.io 4.7.5 from CDNs with SRI hashes; there is
// no network here, so the browser gets the same files (the same bytes: the integrity
// checks pass) from node_modules. The app runs as its `__main__` block does,
// `socketio.run(app)`, on a free port instead of 5000.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ROOT, launchBrowser, startPython, until, watchErrors } from "./lib.mjs";

const HERE = join(ROOT, "tests/e2e");
const CDN = {
  "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.5.1/jquery.min.js": join(HERE, "node_modules/jquery/dist/jquery.min.js"),
  "https://cdn.socket.io/4.7.5/socket.io.min.js": join(HERE, "node_modules/socket.io-client-cdn/dist/socket.io.min.js"),
};

let app;
let browser;
let base;

before(async () => {
  const launcher = (port) =>
    [
      "import sys",
      `sys.path.insert(0, ${JSON.stringify(join(HERE, "flask_socketio_example"))})`,
      "import app",
      `app.socketio.run(app.app, port=${port})`,
    ].join("\n");
  app = await startPython({
    args: (port) => ["-c", launcher(port)],
    cwd: join(HERE, "flask_socketio_example"),
    ready: async (url) => (await fetch(url + "/")).ok,
  });
  base = app.base;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await app?.stop("SIGINT");
});

async function openPage() {
  const page = await browser.newPage();
  for (const [url, file] of Object.entries(CDN)) {
    const body = readFileSync(file);
    await page.route(url, (route) =>
      route.fulfill({
        status: 200,
        contentType: "application/javascript",
        headers: { "Access-Control-Allow-Origin": "*" },
        body,
      }),
    );
  }
  const pageErrors = watchErrors(page);
  await page.goto(base + "/");
  return { page, pageErrors };
}

const logOf = (page) => page.evaluate(() => document.querySelector("#log").innerText.split("\n").filter(Boolean));

async function expectLog(page, pattern, what) {
  await until(async () => (await logOf(page)).some((l) => pattern.test(l)), { what, timeout: 10000 });
}

async function submit(page, form, values) {
  for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, value);
  await page.click(`form#${form} input[type=submit]`);
}

test("Flask-SocketIO's example app, import changed only, works in chromium on one port", { timeout: 90000 }, async () => {
  const a = await openPage();
  const b = await openPage();
  const { page } = a;
  assert.match(await page.textContent("body"), /Async mode is: threading/);
  await expectLog(page, /Received #1: I'm connected!/, "the connect message");
  // The page's own origin, over WebSocket (the transport label updates every second).
  await until(async () => (await page.textContent("#transport")) === "websocket", { what: "websocket", timeout: 10000 });
  await until(async () => /\d/.test(await page.textContent("#ping-pong")), { what: "ping/pong latency", timeout: 10000 });

  await submit(page, "emit", { emit_data: "echo this" });
  await expectLog(page, /Received #2: echo this/, "echo (the session counts it as #2)");

  await submit(page, "broadcast", { broadcast_data: "to everyone" });
  await expectLog(page, /Received #3: to everyone/, "broadcast, on the sender");
  await expectLog(b.page, /Received #\d+: to everyone/, "broadcast, on the other page");

  await submit(page, "join", { join_room: "r1" });
  await expectLog(page, /In rooms: .*r1/, "join room");
  await submit(b.page, "join", { join_room: "r1" });
  await submit(page, "send_room", { room_name: "r1", room_data: "room news" });
  await expectLog(b.page, /Received #\d+: room news/, "send to room, on the other member");
  await expectLog(page, /Received #\d+: room news/, "send to room, on the sender (a member)");

  await submit(page, "leave", { leave_room: "r1" });
  await expectLog(page, /In rooms: (?!.*r1)/, "leave room");

  await submit(page, "close", { close_room: "r1" });
  await expectLog(b.page, /Room r1 is closing\./, "close room, on the member");

  await submit(page, "disconnect", {});
  await expectLog(page, /Received #\d+: Disconnected!/, "the message acked before the disconnect");
  // The server side saw it go with a reason (the example's disconnect handler prints it).
  await until(async () => /Client disconnected \S+ server namespace disconnect/.test(app.output()), {
    what: "the server's disconnect handler",
    timeout: 10000,
  });
  for (const p of [a, b]) assert.deepEqual(p.pageErrors, [], `page errors: ${p.pageErrors.join("\n")}`);
  await a.page.close();
  await b.page.close();
});
