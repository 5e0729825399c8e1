// proxbus console: the live page's event stream (server-sent events).
// Rows arrive as HTML the server rendered with every event field escaped; nothing here builds
// markup from event data.
(function () {
  "use strict";
  // An event's JSON (or an incident's message, plain text) is fetched when its row is first
  // expanded (keeps the page small); shown with textContent, never parsed as markup.
  document.addEventListener("toggle", function (e) {
    var details = e.target;
    if (!details.open || !details.querySelector) { return; }
    var pre = details.querySelector("pre[data-src]");
    if (!pre || pre.getAttribute("data-loaded")) { return; }
    pre.setAttribute("data-loaded", "1");
    pre.textContent = "loading…";
    fetch(pre.getAttribute("data-src"), {credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { return Promise.reject(new Error("HTTP " + r.status)); }
        var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        return json ? r.json().then(function (v) { return JSON.stringify(v, null, 2); }) : r.text();
      })
      .then(function (text) { pre.textContent = text; })
      .catch(function (err) {
        pre.textContent = "not available: " + err.message;
        pre.removeAttribute("data-loaded");
      });
  }, true);
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
