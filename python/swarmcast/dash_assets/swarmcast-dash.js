/* swarmcast.dash browser glue: connects a Dash page to a swarmcast server with the
 * vendored socket.io-client (window.swarmcastDash.io, see socket.io-client.js) and
 * pushes what arrives into dcc.Store components with dash_clientside.set_props.
 * No React build step; served by Dash from the swarmcast package's _js_dist.
 *
 * One global: window.swarmcastDash. Dash's clientside callbacks reach it through
 * window.dash_clientside.swarmcastDash (Dash's own registry of clientside functions).
 *
 * Stores written (ids as built by swarmcast.dash.Realtime, pattern-matching dicts):
 *   {"swarmcast": "status", "rt": id}          the connection status (see statusOf)
 *   {"swarmcast": "event", "rt": id, "name": n}  {"seq": s, "events": [...]}, the last
 *       `buffer` events of n, each {"seq", "id", "ts", "t", "data"}; seq counts every
 *       event this page received, so a consumer takes the entries with seq > its last.
 *   {"swarmcast": "state", "rt": id, "name": n}  the state map n as a plain object.
 * Wire format of keyed state and of swarmcast.dash.Bridge events: docs/dash.md.
 */
(function () {
  "use strict";

  var SD = (window.swarmcastDash = window.swarmcastDash || {});
  var clients = {};

  function now() {
    // Epoch milliseconds with sub-millisecond precision (same clock as the server's
    // time.time() on the same machine).
    return performance.timeOrigin + performance.now();
  }

  function storeId(kind, rt, name) {
    var id = { swarmcast: kind, rt: rt };
    if (name !== undefined) id.name = name;
    return id;
  }

  function setProps(id, props) {
    var dc = window.dash_clientside;
    if (!dc || typeof dc.set_props !== "function") return false;
    try {
      dc.set_props(id, props);
      return true;
    } catch (e) {
      // The component left the layout (a page change): nothing to update.
      if (window.console) console.debug("swarmcast.dash: set_props failed", id, e);
      return false;
    }
  }

  function dashPrefix() {
    try {
      var el = document.getElementById("_dash-config");
      var cfg = el ? JSON.parse(el.textContent) : {};
      return cfg.requests_pathname_prefix || "/";
    } catch (e) {
      return "/";
    }
  }

  // "_swarmcast/snapshot" is relative to Dash's requests_pathname_prefix; an absolute
  // path or URL is used as it is.
  function resolveUrl(url) {
    if (!url) return null;
    if (/^[a-z]+:\/\//i.test(url) || url.charAt(0) === "/") return url;
    return dashPrefix() + url;
  }

  function sameConnection(a, b) {
    var keys = ["url", "path", "namespace", "transports", "auth", "enabled", "events", "states"];
    for (var i = 0; i < keys.length; i++) {
      if (JSON.stringify(a[keys[i]]) !== JSON.stringify(b[keys[i]])) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------
  // One Realtime component: one socket.io connection, its stores and its fallback.
  // ---------------------------------------------------------------------------------
  function Client(cfg) {
    var self = this;
    this.cfg = cfg;
    this.id = cfg.id;
    this.socket = null;
    this.closed = false;
    this.status = {
      state: cfg.enabled === false ? "paused" : "connecting",
      transport: null,
      attempt: 0,
      next_retry_at: null,
      next_retry_in: null,
      rtt_ms: null,
      recovered: false,
      error: null,
      since: now(),
      fallback: false,
      fallback_polls: 0,
      url: cfg.url || window.location.origin,
    };
    this.stats = { packets_in: 0, bytes_in: 0, packets_out: 0, bytes_out: 0, fallback_requests: 0 };
    this.everConnected = false;
    this.events = {};
    (cfg.events || []).forEach(function (name) {
      self.events[name] = {
        seq: 0,
        list: [],
        buffer: (cfg.buffer && cfg.buffer[name]) || cfg.default_buffer || 200,
        history: (cfg.history && cfg.history[name]) || 0,
        lastId: null,
        epoch: null,
        held: null,
        // {since, epoch}: the query for the `history` events before the first push
        // held, once an answer was found to be taken after it (historyOvertaken).
        historyBefore: null,
        dirty: false,
      };
    });
    this.states = {};
    (cfg.states || []).forEach(function (name) {
      self.states[name] = { entries: {}, ready: false, version: null, dirty: false };
    });
    this.flushTimer = null;
    this.lastFlush = 0;
    this.dataDirty = false; // an event or state store waits to be written
    this.statusDirty = false;
    this.catching = false;
    this.catchAgain = false;
    this.fallbackTimer = null;
    this.tickTimer = null;
    this.pingTimer = null;
    this.serverDisconnectTimer = null;
    this.polling = false;
    this.fallbackUrl = resolveUrl(cfg.fallback && cfg.fallback.url);
    if (cfg.enabled !== false) this.open();
  }

  Client.prototype.open = function () {
    var self = this;
    var cfg = this.cfg;
    var io = SD.io;
    if (!io) {
      this.setStatus({ state: "offline", error: "socket.io-client bundle missing" });
      return;
    }
    var rc = cfg.reconnection || {};
    var opts = {
      path: cfg.path || "/socket.io",
      forceNew: true,
      reconnection: true,
      reconnectionDelay: rc.delay || 1000,
      reconnectionDelayMax: rc.delay_max || 5000,
      randomizationFactor: rc.jitter === undefined ? 0.5 : rc.jitter,
      timeout: cfg.connect_timeout || 10000,
      // Long-polling first, then the upgrade to WebSocket where it passes (not
      // WebTransport, which swarmcast does not serve).
      transports: cfg.transports || ["polling", "websocket"],
    };
    if (cfg.auth) opts.auth = cfg.auth;
    var ns = cfg.namespace || "/";
    var socket = cfg.url ? io(cfg.url.replace(/\/$/, "") + ns, opts) : io(ns, opts);
    this.socket = socket;
    var manager = socket.io;

    // The delay of the next attempt, as socket.io-client's own backoff (exponential,
    // with jitter) draws it.
    if (manager.backoff && typeof manager.backoff.duration === "function") {
      var duration = manager.backoff.duration.bind(manager.backoff);
      manager.backoff.duration = function () {
        var ms = duration();
        self.setStatus({ next_retry_at: now() + ms, attempt: manager.backoff.attempts });
        return ms;
      };
    }
    manager.on("open", function () {
      var engine = manager.engine;
      engine.on("packet", function (p) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += packetBytes(p);
      });
      engine.on("packetCreate", function (p) {
        self.stats.packets_out += 1;
        self.stats.bytes_out += packetBytes(p);
      });
      engine.on("upgrade", function (transport) {
        self.setStatus({ transport: transport.name });
      });
    });
    manager.on("reconnect_attempt", function (attempt) {
      self.setStatus({ state: self.status.fallback ? "fallback" : "reconnecting", attempt: attempt });
    });

    socket.on("connect", function () {
      var engine = manager.engine;
      var recovered = !!socket.recovered;
      self.everConnected = true;
      clearTimeout(self.fallbackTimer);
      self.fallbackTimer = null;
      self.stopFallback();
      self.setStatus({
        state: "connected",
        sid: socket.id, // what Bridge.emit(..., to=sid) addresses
        transport: engine && engine.transport ? engine.transport.name : null,
        attempt: 0,
        next_retry_at: null,
        recovered: recovered,
        error: null,
        since: now(),
      });
      // A recovered session kept its subscriptions and replays what it missed; any
      // other connection subscribes again and starts from a fresh snapshot. So does a
      // recovered one for a map the fallback polls replaced meanwhile (not ready): the
      // replayed deltas cannot apply to that copy.
      Object.keys(self.states).forEach(function (name) {
        if (recovered && self.states[name].ready) return;
        self.states[name].ready = false;
        socket.emit("subscribe", { state: name });
      });
      if (!recovered) self.catchUp(true);
      self.ping();
    });
    socket.on("disconnect", function (reason) {
      self.setStatus({ state: "reconnecting", rtt_ms: null, error: reason, since: now() });
      if (reason === "io server disconnect") {
        // The server closed this session (socket.io-client does not retry on its own):
        // come back after a delay drawn like the client's own backoff.
        var delay = (rc.delay || 1000) * (1 + (Math.random() * 2 - 1) * (rc.jitter === undefined ? 0.5 : rc.jitter));
        self.setStatus({ next_retry_at: now() + delay, attempt: 1 });
        clearTimeout(self.serverDisconnectTimer);
        self.serverDisconnectTimer = setTimeout(function () {
          if (!self.closed && !socket.connected) socket.connect();
        }, delay);
      }
      self.armFallback();
    });
    socket.on("connect_error", function (err) {
      var message = err && err.message ? err.message : String(err);
      if (!socket.active) {
        // Refused by the server (a connect handler said no): no automatic retry.
        self.setStatus({ state: "offline", error: message });
      } else if (!self.status.fallback) {
        self.setStatus({ state: self.everConnected ? "reconnecting" : "connecting", error: message });
      } else {
        self.setStatus({ error: message });
      }
      self.armFallback();
    });

    Object.keys(this.events).forEach(function (name) {
      socket.on(name, function (data, meta) {
        self.onEvent(name, data, meta);
      });
    });
    if (Object.keys(this.states).length) {
      socket.on("swarmcast:snapshot", function (msg) {
        var st = msg && self.states[msg.map];
        if (!st) return;
        st.entries = Object.assign({}, msg.entries);
        st.ready = true;
        st.version = null;
        self.markState(msg.map);
      });
      socket.on("swarmcast:delta", function (msg) {
        var st = msg && self.states[msg.map];
        if (!st || !st.ready) return;
        if (msg.deleted) delete st.entries[msg.key];
        else st.entries[msg.key] = msg.value;
        self.markState(msg.map);
      });
    }
    this.pingTimer = setInterval(function () {
      self.ping();
    }, cfg.ping_interval || 5000);
    // While waiting for a retry the countdown in the status moves on.
    this.tickTimer = setInterval(function () {
      if (self.status.next_retry_at && self.status.state !== "connected") self.setStatus({});
    }, 500);
    this.armFallback();
  };

  function packetBytes(p) {
    if (!p) return 0;
    var d = p.data;
    if (typeof d === "string") return d.length + 1;
    if (d && d.byteLength !== undefined) return d.byteLength + 1;
    return 1;
  }

  Client.prototype.close = function () {
    this.closed = true;
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.flushTimer);
    clearTimeout(this.serverDisconnectTimer);
    clearInterval(this.pingTimer);
    clearInterval(this.tickTimer);
    this.stopFallback();
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.io.removeAllListeners && this.socket.io.removeAllListeners();
      this.socket.disconnect();
      this.socket = null;
    }
  };

  // Round trip of an emit with ack (`swarmcast:ping`, answered by swarmcast.dash.Bridge).
  Client.prototype.ping = function () {
    var self = this;
    var socket = this.socket;
    if (!socket || !socket.connected) return;
    var t0 = performance.now();
    socket.timeout(this.cfg.ping_timeout || 5000).emit("swarmcast:ping", { t: now() }, function (err) {
      if (err || self.socket !== socket || !socket.connected) return;
      self.setStatus({ rtt_ms: Math.round((performance.now() - t0) * 100) / 100 });
    });
  };

  // ---- events ----------------------------------------------------------------------

  Client.prototype.onEvent = function (name, data, meta) {
    var ev = this.events[name];
    var id = meta && typeof meta === "object" && typeof meta.id === "number" ? meta.id : null;
    var item = {
      id: id,
      ts: id !== null && typeof meta.ts === "number" ? meta.ts : null,
      t: now(),
      data: data === undefined ? null : data,
      epoch: id !== null ? meta.epoch : null,
    };
    if (ev.held) {
      ev.held.push(item);
      return;
    }
    if (id !== null) {
      if (ev.epoch !== null && item.epoch !== ev.epoch) {
        // The publishing process restarted (a new Bridge epoch): its ids start again at
        // 1, so an id above 1 means its first events were missed: fetched below.
        ev.lastId = 0;
      }
      ev.epoch = item.epoch;
      if (ev.lastId !== null && id <= ev.lastId) return; // already delivered
      if (ev.lastId !== null && id > ev.lastId + 1 && this.fallbackUrl) {
        // A gap (missed while away): hold this one, fetch the missing ones, keep order.
        ev.held = [item];
        this.catchUp(false);
        return;
      }
      ev.lastId = id;
    }
    this.append(name, item);
  };

  Client.prototype.append = function (name, item) {
    var ev = this.events[name];
    ev.seq += 1;
    ev.list.push({ seq: ev.seq, id: item.id, ts: item.ts, t: item.t, data: item.data });
    if (ev.list.length > ev.buffer) ev.list.splice(0, ev.list.length - ev.buffer);
    ev.dirty = true;
    this.dataDirty = true;
    this.scheduleFlush();
  };

  // Merge events fetched over HTTP (ids > lastId) with those held meanwhile, in id order.
  // `epoch`: the answering Bridge's. When it is not the one the page's ids come from (the
  // publishing process restarted), the endpoint answered from the start of its own epoch
  // (the query said which epoch `lastId` belongs to): what was held from the old epoch
  // and not shown yet goes first, then every event of the new one, from id 1.
  Client.prototype.merge = function (name, fetched, epoch, last) {
    var self = this;
    var ev = this.events[name];
    var held = ev.held || [];
    ev.held = null;
    ev.historyBefore = null;
    var byId = function (a, b) {
      return a.id - b.id;
    };
    var hasEpoch = epoch !== undefined && epoch !== null;
    if (hasEpoch && ev.epoch !== null && epoch !== ev.epoch) {
      var oldEpoch = ev.epoch;
      var oldLast = ev.lastId;
      held
        .filter(function (e) {
          return e.id !== null && e.epoch === oldEpoch && (oldLast === null || e.id > oldLast);
        })
        .sort(byId)
        .forEach(function (e) {
          self.append(name, e);
        });
      ev.lastId = 0;
    }
    if (hasEpoch) ev.epoch = epoch;
    var withId = [];
    var withoutId = [];
    (fetched || []).forEach(function (e) {
      withId.push({ id: e.id, ts: e.ts, t: now(), data: e.data === undefined ? null : e.data, epoch: epoch });
    });
    held.forEach(function (e) {
      if (e.id === null) withoutId.push(e);
      else if (e.epoch === ev.epoch || ev.epoch === null) withId.push(e);
    });
    withId.sort(byId);
    for (var i = 0; i < withId.length; i++) {
      var e = withId[i];
      if (ev.lastId !== null && e.id <= ev.lastId) continue;
      ev.lastId = e.id;
      this.append(name, e);
    }
    for (var j = 0; j < withoutId.length; j++) this.append(name, withoutId[j]);
    // Nothing seen yet (`latest`, or history 0): the publisher's last id is where the
    // next fetch starts.
    if (ev.lastId === null && typeof last === "number") ev.lastId = last;
  };

  // The snapshot query of one event store: the events after the last id seen, with the
  // epoch that id belongs to (`NAME:ID@EPOCH`: a Bridge of another epoch answers from its
  // own first event); else the last `history` ones (`NAME:-N`) or none (`NAME:latest`).
  Client.prototype.eventQuery = function (name, withHistory) {
    var ev = this.events[name];
    if (ev.lastId !== null) return name + ":" + ev.lastId + (ev.epoch ? "@" + ev.epoch : "");
    if (ev.historyBefore) return name + ":" + ev.historyBefore.since + "@" + ev.historyBefore.epoch;
    if (withHistory && ev.history > 0 && ev.seq === 0) return name + ":-" + ev.history;
    return null;
  };

  // Ask the snapshot endpoint for the events missed while away (ids after the last one
  // seen), or for `history` events at the first connection. Push events that arrive
  // meanwhile are held and merged in id order.
  Client.prototype.catchUp = function (withHistory) {
    var self = this;
    if (!this.fallbackUrl) return;
    if (this.catching) {
      this.catchAgain = true;
      return;
    }
    var params = [];
    Object.keys(this.events).forEach(function (name) {
      var ev = self.events[name];
      var query = self.eventQuery(name, withHistory);
      if (query === null) return;
      params.push(["event", query]);
      if (!ev.held) ev.held = [];
    });
    if (!params.length) return;
    this.catching = true;
    this.requestSnapshot(params)
      .then(function (body) {
        var events = (body && body.events) || {};
        Object.keys(self.events).forEach(function (name) {
          if (!self.events[name].held) return;
          var got = events[name] || {};
          if (self.historyOvertaken(name, got.events, body ? body.epoch : null)) {
            self.catchAgain = true; // the held pushes wait for the second answer
            return;
          }
          self.merge(name, got.events, body ? body.epoch : null, got.last);
        });
      })
      .catch(function () {
        Object.keys(self.events).forEach(function (name) {
          if (self.events[name].held) self.merge(name, [], null);
        });
      })
      .then(function () {
        self.catching = false;
        if (self.catchAgain) {
          self.catchAgain = false;
          self.catchUp(false);
        }
      });
  };

  // The snapshot over the connection while there is one (`swarmcast:catchup`, answered
  // by swarmcast.dash.Bridge): the answer comes after every push the server sent before
  // taking it. An HTTP answer can overtake pushes still in flight (during the upgrade
  // to WebSocket, say), and those would then be taken for events already shown. Over
  // HTTP otherwise, or when nothing answers on the connection.
  Client.prototype.requestSnapshot = function (params) {
    var self = this;
    var socket = this.socket;
    if (!socket || !socket.connected) return this.fetchSnapshot(params);
    var query = { state: [], event: [] };
    params.forEach(function (p) {
      if (query[p[0]]) query[p[0]].push(p[1]);
    });
    var timeout = (this.cfg.fallback && this.cfg.fallback.timeout) || 5000;
    return new Promise(function (resolve, reject) {
      socket.timeout(timeout).emit("swarmcast:catchup", query, function (err, body) {
        if (err || !body || typeof body !== "object" || body.error) reject(err || new Error("catchup refused"));
        else resolve(body);
      });
    })
      .catch(function () {
        return self.fetchSnapshot(params);
      })
      .then(function (body) {
        if (self.closed) throw new Error("closed");
        return body;
      });
  };

  // A first connection's `history` events are the last ones published before the page
  // connected. An answer taken after pushes this page already holds (a burst right
  // after the connect) counts those pushes among its last `history`: then ask once
  // more, for the `history` events before the first push held.
  Client.prototype.historyOvertaken = function (name, fetched, epoch) {
    var ev = this.events[name];
    if (ev.lastId !== null || ev.seq !== 0 || ev.history <= 0 || ev.historyBefore || !epoch) return false;
    var first = null;
    (ev.held || []).forEach(function (e) {
      if (e.id !== null && e.epoch === epoch && (first === null || e.id < first)) first = e.id;
    });
    if (first === null || first <= 1) return false;
    var overlaps = (fetched || []).some(function (e) {
      return e.id >= first;
    });
    if (!overlaps) return false;
    ev.historyBefore = { since: Math.max(0, first - 1 - ev.history), epoch: epoch };
    return true;
  };

  Client.prototype.fetchSnapshot = function (params) {
    var self = this;
    var query = params
      .map(function (p) {
        return encodeURIComponent(p[0]) + "=" + encodeURIComponent(p[1]);
      })
      .join("&");
    var url = this.fallbackUrl + (this.fallbackUrl.indexOf("?") >= 0 ? "&" : "?") + query;
    var controller = typeof AbortController !== "undefined" ? new AbortController() : null;
    var timer = setTimeout(function () {
      if (controller) controller.abort();
    }, this.cfg.fallback.timeout || 5000);
    this.stats.fallback_requests += 1;
    return fetch(url, { credentials: "same-origin", cache: "no-store", signal: controller ? controller.signal : undefined })
      .then(function (r) {
        clearTimeout(timer);
        if (!r.ok) throw new Error("snapshot endpoint answered " + r.status);
        return r.json();
      })
      .catch(function (e) {
        clearTimeout(timer);
        throw e;
      })
      .then(function (body) {
        if (self.closed) throw new Error("closed");
        return body;
      });
  };

  // ---- keyed state -----------------------------------------------------------------

  Client.prototype.markState = function (name) {
    this.states[name].dirty = true;
    this.dataDirty = true;
    this.scheduleFlush();
  };

  // ---- fallback: HTTP polling of the snapshot endpoint on the dcc.Interval -----------

  Client.prototype.armFallback = function () {
    var self = this;
    if (this.fallbackTimer || this.status.fallback || this.closed) return;
    var after = (this.cfg.fallback && this.cfg.fallback.after) || 3000;
    this.fallbackTimer = setTimeout(function () {
      self.fallbackTimer = null;
      if (!self.socket || self.socket.connected || self.closed) return;
      self.startFallback();
    }, after);
  };

  Client.prototype.startFallback = function () {
    if (!this.fallbackUrl) {
      this.setStatus({ state: "offline" });
      return;
    }
    this.setStatus({ state: "fallback", fallback: true });
    setProps(storeId("interval", this.id), {
      disabled: false,
      interval: (this.cfg.fallback && this.cfg.fallback.interval) || 1000,
    });
    this.poll();
  };

  Client.prototype.stopFallback = function () {
    if (!this.status.fallback) return;
    this.status.fallback = false;
    setProps(storeId("interval", this.id), { disabled: true });
    this.statusDirty = true;
    this.scheduleFlush();
  };

  Client.prototype.poll = function () {
    var self = this;
    if (!this.status.fallback || this.polling) return;
    var params = [];
    Object.keys(this.states).forEach(function (name) {
      var st = self.states[name];
      params.push(["state", st.version === null ? name : name + ":" + st.version]);
    });
    Object.keys(this.events).forEach(function (name) {
      params.push(["event", self.eventQuery(name, true) || name + ":latest"]);
    });
    this.polling = true;
    this.fetchSnapshot(params)
      .then(function (body) {
        if (!self.status.fallback) return; // push came back meanwhile: it wins
        var states = body.states || {};
        Object.keys(states).forEach(function (name) {
          var st = self.states[name];
          if (!st) return;
          st.entries = Object.assign({}, states[name].entries);
          st.version = states[name].version;
          st.ready = false; // a push snapshot is needed again once connected
          self.markState(name);
        });
        var events = body.events || {};
        Object.keys(events).forEach(function (name) {
          if (!self.events[name]) return;
          if (!self.events[name].held) self.events[name].held = [];
          self.merge(name, events[name].events, body.epoch, events[name].last);
        });
        self.setStatus({ state: "fallback", fallback_polls: self.status.fallback_polls + 1, error: null });
      })
      .catch(function (e) {
        if (self.status.fallback) self.setStatus({ state: "offline", error: "snapshot endpoint: " + (e && e.message) });
      })
      .then(function () {
        self.polling = false;
      });
  };

  // ---- writing the stores ------------------------------------------------------------

  Client.prototype.setStatus = function (patch) {
    Object.assign(this.status, patch);
    this.statusDirty = true;
    this.scheduleFlush();
  };

  Client.prototype.statusOf = function () {
    var s = Object.assign({}, this.status);
    s.next_retry_in = s.next_retry_at && s.state !== "connected" ? Math.max(0, s.next_retry_at - now()) / 1000 : null;
    if (s.next_retry_in !== null) s.next_retry_in = Math.round(s.next_retry_in * 10) / 10;
    return s;
  };

  // Everything that changed meanwhile is written once: the data stores (events, state
  // maps) at most once per `flush_interval` ms (leading edge: the first change of a
  // quiet period is written at once, in the handler that received it; what follows
  // within the interval is written once when it ends, so a burst costs Dash one
  // re-render per interval). The status store alone does not count against the
  // interval: a ping's round trip written to it must not hold back the next event.
  Client.prototype.scheduleFlush = function () {
    var self = this;
    if (this.flushTimer !== null || this.closed) return;
    var wait = 0;
    if (this.dataDirty) {
      var interval = this.cfg.flush_interval === undefined ? 16 : this.cfg.flush_interval;
      wait = Math.max(0, (this.lastFlush || 0) + interval - performance.now());
    }
    if (wait === 0) {
      this.flush();
      return;
    }
    this.flushTimer = setTimeout(function () {
      self.flushTimer = null;
      self.flush();
    }, wait);
  };

  Client.prototype.flush = function () {
    var self = this;
    var id = this.id;
    if (this.dataDirty) {
      this.dataDirty = false;
      this.lastFlush = performance.now();
    }
    Object.keys(this.states).forEach(function (name) {
      var st = self.states[name];
      if (!st.dirty) return;
      st.dirty = false;
      setProps(storeId("state", id, name), { data: Object.assign({}, st.entries) });
    });
    Object.keys(this.events).forEach(function (name) {
      var ev = self.events[name];
      if (!ev.dirty) return;
      ev.dirty = false;
      setProps(storeId("event", id, name), { data: { seq: ev.seq, events: ev.list.slice() } });
    });
    if (this.statusDirty) {
      this.statusDirty = false;
      setProps(storeId("status", id), { data: this.statusOf() });
    }
  };

  // ---------------------------------------------------------------------------------
  // Public API (window.swarmcastDash) and Dash clientside functions
  // ---------------------------------------------------------------------------------

  /** Open, reconfigure or pause the connection of a Realtime component. */
  SD.configure = function (cfg) {
    if (!cfg || !cfg.id) return window.dash_clientside.no_update;
    var existing = clients[cfg.id];
    if (existing && sameConnection(existing.cfg, cfg)) {
      existing.cfg = cfg;
      return existing.statusOf();
    }
    if (existing) existing.close();
    var client = new Client(cfg);
    clients[cfg.id] = client;
    return client.statusOf();
  };

  /** One tick of the fallback dcc.Interval. */
  SD.poll = function (n, cfg) {
    var client = cfg && clients[cfg.id];
    if (client) client.poll();
    return window.dash_clientside.no_update;
  };

  /** The entries of an event store after `since` (a seq), with how many were missed. */
  SD.newEvents = function (data, since) {
    if (!data || !data.events) return { events: [], seq: since || 0, missed: 0 };
    since = since || 0;
    var events = data.events.filter(function (e) {
      return e.seq > since;
    });
    var first = events.length ? events[0].seq : data.seq + 1;
    return { events: events, seq: data.seq, missed: Math.max(0, first - since - 1) };
  };

  /** The connection of a Realtime component: {socket, status, stats} (debugging, tests). */
  SD.client = function (id) {
    var c = clients[id];
    return c ? { socket: c.socket, status: c.statusOf(), stats: Object.assign({}, c.stats) } : null;
  };

  SD.indicator = function (status) {
    var s = status || { state: "connecting" };
    var colors = {
      connected: "#16a34a",
      connecting: "#9ca3af",
      reconnecting: "#f59e0b",
      fallback: "#3b82f6",
      offline: "#dc2626",
      paused: "#9ca3af",
    };
    var label;
    var detail = [];
    switch (s.state) {
      case "connected":
        label = "Connected";
        if (s.transport) detail.push(s.transport === "polling" ? "long-polling" : s.transport);
        detail.push(s.rtt_ms === null || s.rtt_ms === undefined ? "ping …" : "ping " + s.rtt_ms.toFixed(1) + " ms");
        if (s.recovered) detail.push("session recovered");
        break;
      case "connecting":
        label = "Connecting…";
        break;
      case "reconnecting":
        label = "Reconnecting";
        if (s.attempt) detail.push("attempt " + s.attempt);
        if (s.next_retry_in !== null && s.next_retry_in !== undefined) detail.push("next retry in " + s.next_retry_in.toFixed(1) + " s");
        break;
      case "fallback":
        label = "Polling fallback";
        detail.push("push unreachable, HTTP polling");
        if (s.attempt) detail.push("retry " + s.attempt);
        if (s.next_retry_in !== null && s.next_retry_in !== undefined) detail.push("next in " + s.next_retry_in.toFixed(1) + " s");
        break;
      case "paused":
        label = "Push paused";
        break;
      default:
        label = "Offline";
        if (s.error) detail.push(String(s.error));
    }
    var title = (s.url || "") + (s.error ? " — " + s.error : "");
    // Props of fixed elements, not a new subtree: Dash's renderer handles a prop change
    // far more cheaply than new child components.
    return [
      "swarmcast-indicator swarmcast-" + s.state,
      s.state,
      s.transport || "",
      title,
      {
        width: "0.7em",
        height: "0.7em",
        borderRadius: "50%",
        display: "inline-block",
        background: colors[s.state] || "#dc2626",
      },
      label,
      detail.join(" · "),
    ];
  };

  var dc = (window.dash_clientside = window.dash_clientside || {});
  dc.swarmcastDash = {
    configure: SD.configure,
    poll: SD.poll,
    indicator: SD.indicator,
  };
})();
