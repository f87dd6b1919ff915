"""Flask-SocketIO 5.x server under test of benches/run.sh, in threading mode (Werkzeug +
simple-websocket, the default when neither eventlet nor gevent is installed... or asked
for) or gevent mode (gevent + gevent-websocket).

Same producer as every server of the benchmarks: namespace /bench, events `start`
{rate, duration_ms, pad} and `stats`, both acknowledged (a handler's return value is the
ack); the producer (a background task: a thread, or a greenlet under gevent) broadcasts
`tick` {"seq", "ts" (µs since the epoch), "pad"} on `/`.

"As fast as the server accepts": emit, yield, and pause while the packets waiting in
python-engineio's per-client queues exceed 64 per client (the same bound as swarmcast's
producer).
"""
import argparse
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=["threading", "gevent"], default="threading")
parser.add_argument("--port", type=int, default=5000)
args = parser.parse_args()

if args.mode == "gevent":
    from gevent import monkey

    monkey.patch_all()

import time  # noqa: E402

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(app, async_mode=args.mode, cors_allowed_origins="*")
state = {"running": False, "done": False, "sent": 0}


def backlog():
    total = 0
    for s in list(socketio.server.eio.sockets.values()):
        total += s.queue.qsize()
    return total


def produce(rate, duration_ms, pad):
    start = time.monotonic()
    end = start + duration_ms / 1000.0
    seq = 0
    if rate > 0:
        interval = 1.0 / rate
        while True:
            due = start + seq * interval
            if due >= end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                socketio.sleep(delay)
            socketio.emit("tick", {"seq": seq, "ts": time.time_ns() // 1000, "pad": pad})
            seq += 1
            state["sent"] = seq
    else:
        limit = max(1, len(socketio.server.eio.sockets)) * 64
        while time.monotonic() < end:
            if seq % 16 == 0 and backlog() > limit:
                socketio.sleep(0.001)
                continue
            socketio.emit("tick", {"seq": seq, "ts": time.time_ns() // 1000, "pad": pad})
            seq += 1
            state["sent"] = seq
            socketio.sleep(0)
    state["sent"] = seq
    state["done"] = True
    state["running"] = False


@socketio.on("connect")
def on_connect(auth=None):
    return True


@socketio.on("start", namespace="/bench")
def on_start(arg):
    if state["running"]:
        return {"ok": False, "error": "already running"}
    state.update(running=True, done=False, sent=0)
    rate = float(arg.get("rate") or 0)
    duration_ms = int(arg.get("duration_ms") or 10000)
    pad = "x" * int(arg.get("pad") or 150)
    socketio.start_background_task(produce, rate, duration_ms, pad)
    return {"ok": True}


@socketio.on("stats", namespace="/bench")
def on_stats(arg=None):
    return {"sent": state["sent"], "done": state["done"]}


if __name__ == "__main__":
    print(f"flask-socketio ({args.mode}) listening on 127.0.0.1:{args.port}", file=sys.stderr)
    kwargs = {"allow_unsafe_werkzeug": True} if args.mode == "threading" else {}
    socketio.run(app, host="127.0.0.1", port=args.port, log_output=False, **kwargs)
