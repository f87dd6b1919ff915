/* SwarmBot dashboard: clientside rendering of the stores (both modes) and the traffic
 * panel. Served by Dash from examples/swarmbot/assets/. */
(function () {
  "use strict";

  function clock(ms) {
    if (!ms) return "";
    var d = new Date(ms);
    function two(n) {
      return (n < 10 ? "0" : "") + n;
    }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  var COLUMNS = [
    ["queued", "Queued"],
    ["research", "Research"],
    ["code", "Code"],
    ["review", "Review"],
    ["test", "Test"],
    ["done", "Done"],
  ];

  function esc(v) {
    return String(v === undefined || v === null ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // The agents table is one string of HTML (every value escaped), painted into its Div
  // (see paint): one DOM write per update, whatever changed. Dash's renderer does work
  // per Dash component at every change, so a table of components would cost many times
  // more, and the same HTML as a dcc.Markdown's children goes through its parser.
  function agents(map, order) {
    map = map || {};
    var rows = order.map(function (id) {
      var a = map[id] || {};
      var p = a.progress || 0;
      return (
        '<tr data-agent="' + esc(id) + '" data-status="' + esc(a.status) + '" data-ts="' + esc(a.ts) + '" data-probe="' +
        esc(a.probe) + '"><td class="agent-id">' + esc(id) + "</td><td>" + esc(a.role) + '</td><td class="status">' +
        esc(a.status) + '</td><td class="mono">' + esc(a.task || "—") + '</td><td class="progress" style="background: linear-gradient(90deg, #dbeafe ' +
        p + "%, transparent " + p + '%)">' + p + '%</td><td class="num">' + esc(a.done || 0) + '</td><td class="note">' + esc(a.note) + "</td></tr>"
      );
    });
    return (
      '<table class="agents-table"><thead><tr><th>Agent</th><th>Role</th><th>Status</th><th>Task</th><th>Progress</th><th>Done</th><th>Doing</th></tr></thead><tbody>' +
      rows.join("") +
      "</tbody></table>"
    );
  }

  function tasks(map, columns) {
    map = map || {};
    var cols = {};
    columns.forEach(function (c) {
      cols[c] = [];
    });
    Object.keys(map).forEach(function (id) {
      var t = map[id];
      if (cols[t.stage]) cols[t.stage].push([id, t]);
    });
    var titles = {};
    COLUMNS.forEach(function (c) {
      titles[c[0]] = c[1];
    });
    var html = columns.map(function (key) {
      var items = cols[key];
      items.sort(function (a, b) {
        return key === "done" ? (b[1].finished || 0) - (a[1].finished || 0) : a[1].created - b[1].created;
      });
      var cards = items.slice(0, 8).map(function (it) {
        var t = it[1];
        var who = t.agent ? esc(t.agent) : key === "done" ? "done" : '<em>waiting</em>';
        return '<div class="task" data-task="' + esc(it[0]) + '"><b>' + esc(it[0]) + "</b> · " + who + '<div class="task-title">' + esc(t.title) + "</div></div>";
      });
      if (items.length > 8) cards.push('<div class="more">+' + (items.length - 8) + " more</div>");
      return '<div class="column"><h4>' + titles[key] + " (" + items.length + ")</h4>" + cards.join("") + "</div>";
    });
    return '<div class="board">' + html.join("") + "</div>";
  }

  function pad(text, n) {
    text = String(text);
    return text.length >= n ? text.slice(0, n - 1) + " " : text + " ".repeat(n - text.length);
  }

  var MARK = { blocked: "! ", done: "✓ ", queued: "+ ", burst: "# " };

  // The log is the text of one <pre>: 200 lines as 200 components would cost Dash's
  // renderer more than all the rest of the page.
  function activity(store) {
    var events = (store && store.events) || [];
    var lines = events.slice(-200).reverse().map(function (e) {
      var d = e.data || {};
      return pad(clock(d.t || e.ts), 14) + (MARK[d.kind] || "  ") + pad(d.agent || "coordinator", 14) + (d.text || JSON.stringify(d));
    });
    return lines.join("\n");
  }

  // ---- the live graphs ----------------------------------------------------------------
  // Drawn on <canvas> here, all four at every metrics sample (twice a second), about a
  // millisecond in all. The demo drew them with Plotly (dcc.Graph) before: one
  // Plotly.react of these small line charts costs 13-16 ms of main thread on the
  // development machine even on an otherwise empty page (software rendering, SVG, text
  // measurement), plus Dash's handling of the figure, and every push update arriving
  // meanwhile waited for it. Redrawing one graph a second, each in turn, still put that
  // wait into the page's p99 push delay in 3 runs of 10 (30.7-36.0 ms; docs/dash.md).
  var WINDOW_MS = 60000; // the x axis: the last minute, ending at the newest sample
  var GRAPHS = [
    ["g-eps", [["eps", "events/s", "#6366f1"]]],
    ["g-tpm", [["tpm", "tasks/min", "#16a34a"]]],
    ["g-queue", [["queue", "queue", "#f59e0b"], ["busy", "busy agents", "#0ea5e9"]]],
    ["g-lat", [["lat50", "p50", "#8b5cf6"], ["lat95", "p95", "#ef4444"]]],
  ];

  // The smallest of 1, 2, 2.5, 5 x 10^k at or above v: the top of the y axis.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (v <= steps[i] * p) return steps[i] * p;
    return 10 * p;
  }

  function label(v) {
    return Math.abs(v) >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(Math.round(v * 100) / 100);
  }

  function hms(ms) {
    return clock(ms).slice(0, 8);
  }

  // One line chart: `samples` are the metrics dicts (t in epoch ms), `series` [key, name,
  // colour]. The canvas is sized to its CSS box (times devicePixelRatio) at each draw.
  function chart(id, samples, series) {
    var canvas = document.getElementById(id);
    if (!canvas || !canvas.getContext) return;
    var w = canvas.clientWidth,
      h = canvas.clientHeight;
    if (!w || !h) return; // not laid out (hidden)
    var dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    var left = 38,
      right = 8,
      top = series.length > 1 ? 20 : 8,
      bottom = 20;
    var pw = w - left - right,
      ph = h - top - bottom;
    var t1 = samples.length ? samples[samples.length - 1].t : Date.now();
    var t0 = t1 - WINDOW_MS;
    var max = 0;
    samples.forEach(function (m) {
      series.forEach(function (s) {
        var v = m[s[0]];
        if (typeof v === "number" && v > max) max = v;
      });
    });
    var ymax = niceCeil(max);
    function x(t) {
      return left + ((t - t0) / WINDOW_MS) * pw;
    }
    function y(v) {
      return top + ph - (v / ymax) * ph;
    }
    // Axes: the zero line, three y labels, three time labels.
    ctx.strokeStyle = "#e5e7eb";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, Math.round(y(0)) + 0.5);
    ctx.lineTo(left + pw, Math.round(y(0)) + 0.5);
    ctx.stroke();
    ctx.fillStyle = "#6b7280";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    [0, ymax / 2, ymax].forEach(function (v) {
      ctx.fillText(label(v), left - 5, y(v));
    });
    ctx.textBaseline = "top";
    [
      [t0, "left"],
      [t0 + WINDOW_MS / 2, "center"],
      [t1, "right"],
    ].forEach(function (tick) {
      ctx.textAlign = tick[1];
      ctx.fillText(hms(tick[0]), x(tick[0]), top + ph + 5);
    });
    // The lines; a missing value (null) breaks its line.
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    series.forEach(function (s) {
      ctx.strokeStyle = s[2];
      ctx.beginPath();
      var pen = false;
      samples.forEach(function (m) {
        var v = m[s[0]];
        if (typeof v !== "number" || m.t < t0) {
          pen = false;
          return;
        }
        if (pen) ctx.lineTo(x(m.t), y(v));
        else ctx.moveTo(x(m.t), y(v));
        pen = true;
      });
      ctx.stroke();
    });
    // The legend, when there is more than one line.
    if (series.length > 1) {
      var lx = left;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      series.forEach(function (s) {
        ctx.fillStyle = s[2];
        ctx.fillRect(lx, 6, 14, 3);
        ctx.fillStyle = "#374151";
        ctx.fillText(s[1], lx + 18, 8);
        lx += 26 + ctx.measureText(s[1]).width;
      });
    }
    canvas.setAttribute("data-samples", String(samples.length)); // what tests read
  }

  // Draws the four graphs from the metrics samples (oldest first); the callback's
  // output is not updated (see paint).
  function graphs(samples) {
    samples = samples || [];
    GRAPHS.forEach(function (g) {
      chart(g[0], samples, g[1]);
    });
    return window.dash_clientside.no_update;
  }

  // The metrics event store's samples, oldest first.
  function metrics(store) {
    return ((store && store.events) || []).map(function (e) {
      return e.data || {};
    });
  }

  // ---- modes and the traffic panel -------------------------------------------------
  // HTTP requests: Resource Timing entries of fetch/XHR after the page loaded (Dash's
  // callbacks, the snapshot endpoint, Socket.IO long-polling); bytes: transferSize
  // (response headers + body, same-origin only). Socket.IO bytes: engine.io packet
  // payloads both ways as swarmcastDash counts them (either transport); the socket.io
  // polling requests are counted as requests but their bytes only here.
  var traffic = {
    mode: null,
    since: performance.now(),
    modes: {
      push: { ms: 0, requests: 0, http_bytes: 0, sio_bytes: 0 },
      poll: { ms: 0, requests: 0, http_bytes: 0, sio_bytes: 0 },
    },
    lastSio: 0,
  };

  function sioBytes() {
    var c = window.swarmcastDash && window.swarmcastDash.client && window.swarmcastDash.client("rt");
    return c ? c.stats.bytes_in + c.stats.bytes_out : traffic.lastSio;
  }

  function settle() {
    var now = performance.now();
    var m = traffic.modes[traffic.mode];
    var sio = sioBytes();
    if (m) {
      m.ms += now - traffic.since;
      m.sio_bytes += Math.max(0, sio - traffic.lastSio);
    }
    traffic.lastSio = sio;
    traffic.since = now;
  }

  if (typeof PerformanceObserver !== "undefined") {
    try {
      performance.setResourceTimingBufferSize && performance.setResourceTimingBufferSize(2000);
      new PerformanceObserver(function (list) {
        list.getEntries().forEach(function (e) {
          if (e.initiatorType !== "fetch" && e.initiatorType !== "xmlhttprequest") return;
          var m = traffic.modes[traffic.mode];
          if (!m) return;
          m.requests += 1;
          if (e.name.indexOf("/socket.io/") < 0) m.http_bytes += e.transferSize || 0;
        });
        performance.clearResourceTimings && performance.clearResourceTimings();
      }).observe({ type: "resource", buffered: false });
    } catch (e) {
      /* no Resource Timing: the panel shows Socket.IO bytes only */
    }
  }

  function kb(n) {
    return (n / 1024).toFixed(1) + " KB";
  }

  function trafficPanel() {
    settle();
    var lines = [pad("This page", 20) + pad("time", 8) + pad("requests/min", 14) + pad("bytes/min", 14) + pad("requests", 10) + "bytes"];
    ["push", "poll"].forEach(function (name) {
      var m = traffic.modes[name];
      var minutes = m.ms / 60000;
      var bytes = m.http_bytes + m.sio_bytes;
      var ok = minutes > 0.05;
      lines.push(
        pad((name === traffic.mode ? "▶ " : "  ") + (name === "push" ? "Push (swarmcast)" : "Polling (1 s)"), 20) +
          pad((m.ms / 1000).toFixed(0) + " s", 8) +
          pad(ok ? (m.requests / minutes).toFixed(1) : "—", 14) +
          pad(ok ? kb(bytes / minutes) : "—", 14) +
          pad(String(m.requests), 10) +
          kb(bytes)
      );
    });
    return lines.join("\n");
  }

  // Write `html` into the element Dash created for it with no children (dashboard.py's
  // _painted), skipping the write when nothing changed. The callback's output is never
  // updated: the paint is its effect, and React has nothing to reconcile there.
  function paint(id, html) {
    var el = document.getElementById(id);
    if (el && el.__swarmbotHtml !== html) {
      el.innerHTML = html;
      el.__swarmbotHtml = html;
    }
    return window.dash_clientside.no_update;
  }

  var dc = (window.dash_clientside = window.dash_clientside || {});
  dc.swarmbot = {
    paint: paint,
    agents: agents,
    tasks: tasks,
    activity: activity,
    graphs: graphs,
    metrics: metrics,
    modeFromUrl: function (search) {
      var m = /[?&]mode=(push|poll)/.exec(search || "");
      return m ? m[1] : window.dash_clientside.no_update;
    },
    setMode: function (mode, cfg) {
      settle();
      traffic.mode = mode;
      var enabled = mode !== "poll";
      var next = cfg && cfg.enabled !== enabled ? Object.assign({}, cfg, { enabled: enabled }) : window.dash_clientside.no_update;
      return [next, enabled];
    },
    traffic: trafficPanel,
    _traffic: traffic,
  };
})();
