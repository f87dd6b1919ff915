// The baseline of tests/e2e/dash_light.test.mjs: the few lines of glue a Flask-SocketIO +
// Dash user writes by hand, socket.io-client calling dash_clientside.set_props on each
// event. (It uses the socket.io-client build swarmcast ships, window.swarmcastDash.io,
// where a user would load socket.io.min.js: the same library, the same version.)
(function () {
  if (!/[?&]glue=plain\b/.test(window.location.search)) return;
  var socket = window.swarmcastDash.io("/plain"); // its page's own origin, namespace /plain
  var log = [];
  socket.on("ptick", function (data) {
    log.push(data);
    if (log.length > 500) log.shift();
    window.dash_clientside.set_props("plain-store", { data: log.slice() });
  });
  window.plainSocket = socket;
})();
