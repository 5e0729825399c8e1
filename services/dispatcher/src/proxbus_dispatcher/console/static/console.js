// proxbus console: the live page's event stream (server-sent events).
// Rows arrive as HTML the server rendered with every event field escaped; nothing here builds
// markup from event data.
(function () {
  "use strict";
  var list = document.getElementById("events");
  if (!list || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var empty = document.getElementById("empty");
  var MAX_ROWS = 500;
  function show(text, cls) {
    if (state) { state.textContent = text; state.className = "pill " + cls; }
  }
  var source = new EventSource(list.getAttribute("data-stream"));
  source.onopen = function () { show("live", "ok"); };
  source.onerror = function () { show("reconnecting…", "warn"); };
  source.onmessage = function (msg) {
    if (msg.lastEventId && list.querySelector('[data-id="' + CSS.escape(msg.lastEventId) + '"]')) {
      return;
    }
    list.insertAdjacentHTML("afterbegin", msg.data);
    if (empty) { empty.hidden = true; }
    while (list.children.length > MAX_ROWS) { list.removeChild(list.lastElementChild); }
  };
})();
