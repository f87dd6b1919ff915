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

  // The graphs redraw one at a time, each in turn, at most one a second (so each graph
  // every 4 s; all four at the first sample): a metrics update with one Plotly redraw
  // holds the browser's main thread for 20-40 ms here (four at once 60-100 ms), and
  // every push update that arrives meanwhile waits for it. One redraw per metrics
  // sample (twice a second) put a probe behind one often enough to make the page's
  // p99 push delay 28-34 ms; one a second, 24-25 ms.
  var GRAPH_EVERY_MS = 950;
  var lastGraphs = 0;
  var nextGraph = 0;

  function fig(traces, yTitle) {
    return {
      data: traces,
      layout: {
        height: 170,
        margin: { l: 40, r: 10, t: 6, b: 28 },
        showlegend: traces.length > 1,
        legend: { orientation: "h", x: 0, y: 1.15, font: { size: 10 } },
        // No grid lines and no hover layer: ~40% less time per redraw here.
        xaxis: { type: "date", tickformat: "%H:%M:%S", showgrid: false },
        yaxis: { rangemode: "tozero", title: { text: yTitle || "" }, showgrid: false, zeroline: true, zerolinecolor: "#e5e7eb" },
        hovermode: false,
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        font: { size: 11 },
        uirevision: "keep",
      },
    };
  }

  function line(x, y, name, color) {
    return { x: x, y: y, name: name, type: "scatter", mode: "lines", line: { color: color, width: 2 } };
  }

  function graphs(store) {
    var events = (store && store.events) || [];
    var nu = window.dash_clientside.no_update;
    var t = performance.now();
    var all = lastGraphs === 0 || events.length <= 1;
    if (!all && t - lastGraphs < GRAPH_EVERY_MS) return [nu, nu, nu, nu];
    lastGraphs = t;
    var x = [],
      eps = [],
      tpm = [],
      queue = [],
      busy = [],
      l50 = [],
      l95 = [];
    events.forEach(function (e) {
      var m = e.data || {};
      x.push(new Date(m.t));
      eps.push(m.eps);
      tpm.push(m.tpm);
      queue.push(m.queue);
      busy.push(m.busy);
      l50.push(m.lat50);
      l95.push(m.lat95);
    });
    var figures = [
      function () {
        return fig([line(x, eps, "events/s", "#6366f1")]);
      },
      function () {
        return fig([line(x, tpm, "tasks/min", "#16a34a")]);
      },
      function () {
        return fig([line(x, queue, "queue", "#f59e0b"), line(x, busy, "busy agents", "#0ea5e9")]);
      },
      function () {
        return fig([line(x, l50, "p50", "#8b5cf6"), line(x, l95, "p95", "#ef4444")]);
      },
    ];
    if (all) {
      nextGraph = 0;
      return figures.map(function (f) {
        return f();
      });
    }
    var out = [nu, nu, nu, nu];
    out[nextGraph] = figures[nextGraph]();
    nextGraph = (nextGraph + 1) % 4;
    return out;
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
    modeFromUrl: function (search) {
      var m = /[?&]mode=(push|poll)/.exec(search || "");
      return m ? m[1] : window.dash_clientside.no_update;
    },
    setMode: function (mode, cfg) {
      settle();
      lastGraphs = 0;
      traffic.mode = mode;
      var enabled = mode !== "poll";
      var next = cfg && cfg.enabled !== enabled ? Object.assign({}, cfg, { enabled: enabled }) : window.dash_clientside.no_update;
      return [next, enabled];
    },
    traffic: trafficPanel,
    _traffic: traffic,
  };
})();
