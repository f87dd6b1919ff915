// Node socket.io 4.8 server under test, with the same producer as every server of
// benches/run.sh: namespace /bench, events `start` {rate, duration_ms, pad} and `stats`,
// both acknowledged; the producer broadcasts `tick` {seq, ts (µs since the epoch), pad}
// on `/`. Node has one thread: the producer is a timer loop on it.
//
// "As fast as the server accepts": emit in bursts of at most 1 ms, yielding to I/O
// between bursts, and pause while the packets waiting in engine.io write buffers
// exceed 64 per client (the same bound as swarmcast's producer).
'use strict';
const http = require('http');
const { performance } = require('perf_hooks');
const { Server } = require('socket.io');

let port = 5000;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') port = Number(argv[++i]);
}

const httpServer = http.createServer();
const io = new Server(httpServer, { serveClient: false });
io.on('connection', () => {});

const state = { running: false, done: false, sent: 0 };
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

function backlog() {
  let n = 0;
  for (const client of Object.values(io.engine.clients)) n += client.writeBuffer.length;
  return n;
}

function produce(rate, durationMs, pad) {
  const start = performance.now();
  const end = start + durationMs;
  let seq = 0;
  const emit = () => {
    io.emit('tick', { seq, ts: nowUs(), pad });
    seq += 1;
    state.sent = seq;
  };
  const finish = () => {
    state.done = true;
    state.running = false;
  };
  if (rate > 0) {
    const interval = 1000 / rate;
    const step = () => {
      let now = performance.now();
      while (start + seq * interval <= now && start + seq * interval < end) {
        emit();
        now = performance.now();
      }
      const due = start + seq * interval;
      if (due >= end) return finish();
      setTimeout(step, Math.max(0, due - performance.now()));
    };
    step();
  } else {
    const limit = Math.max(1, io.engine.clientsCount) * 64;
    const burst = () => {
      const now = performance.now();
      if (now >= end) return finish();
      if (backlog() > limit) return setTimeout(burst, 0);
      const until = now + 1;
      do {
        emit();
      } while (performance.now() < until);
      setImmediate(burst);
    };
    burst();
  }
}

io.of('/bench').on('connection', (socket) => {
  socket.on('start', (arg, ack) => {
    if (state.running) return ack({ ok: false, error: 'already running' });
    Object.assign(state, { running: true, done: false, sent: 0 });
    produce(Number(arg.rate) || 0, Number(arg.duration_ms) || 10000, 'x'.repeat(Number(arg.pad) || 150));
    ack({ ok: true });
  });
  socket.on('stats', (_arg, ack) => ack({ sent: state.sent, done: state.done }));
});

httpServer.listen(port, '127.0.0.1', () => {
  console.error(`node socket.io ${require('socket.io/package.json').version} listening on 127.0.0.1:${port}`);
});
process.on('SIGTERM', () => process.exit(0));
