// Live staff pages over Channels (no framework, no CDN): one socket, ws/staff/live/.
// Pushes carry ids only. A page marks what may change with data-live-refresh="<feeds>":
// on a push for one of those feeds the page is fetched again and each marked element is
// replaced in place (debounced, plus one trailing refresh a second later, because the
// server rate-limits order pushes). The dispute page shows a notice and refreshes its chat.
(function () {
  "use strict";
  var RETRY_MS = 3000, DEBOUNCE_MS = 250, TRAILING_MS = 1200;
  var timers = {};
  var count = function (name) {
    document.body.dataset[name] = String(Number(document.body.dataset[name] || 0) + 1);
  };

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/staff/live/";
  }

  function marked(feed) {
    return Array.prototype.filter.call(document.querySelectorAll("[data-live-refresh]"), function (el) {
      return el.id && el.dataset.liveRefresh.split(/\s+/).indexOf(feed) !== -1;
    });
  }

  function refresh(feed, highlight) {
    var targets = marked(feed);
    if (!targets.length) { return Promise.resolve(); }
    return fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": feed } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        targets.forEach(function (el) {
          var replacement = fresh.getElementById(el.id);
          if (replacement) { el.replaceWith(document.importNode(replacement, true)); }
        });
        if (highlight) { highlight(); }
        if (window.mostroTick) { window.mostroTick(); }
        count("liveUpdates");
      });
  }

  function schedule(feed, highlight) {
    clearTimeout(timers[feed]);
    clearTimeout(timers[feed + ":trailing"]);
    timers[feed] = setTimeout(function () { refresh(feed, highlight); }, DEBOUNCE_MS);
    timers[feed + ":trailing"] = setTimeout(function () { refresh(feed); }, TRAILING_MS);
  }

  function flashRow(selector) {
    return function () {
      var cell = document.querySelector(selector);
      var row = cell && cell.closest("tr");
      if (!row) { return; }
      row.style.transition = "background-color 2s";
      row.style.backgroundColor = "#fff3bf";
      setTimeout(function () { row.style.backgroundColor = ""; }, 2000);
    };
  }

  function disputeNotice(dispute) {
    var marker = document.getElementById("dispute-live");
    if (!marker || marker.dataset.disputeId !== dispute.id) { return; }
    var banner = document.getElementById("dispute-live-banner");
    var text = banner.querySelector(".live-text");
    text.textContent = "This dispute changed: it is now " + dispute.status +
      (dispute.solver_pubkey ? ", held by " + dispute.solver_pubkey.slice(0, 12) + "…" : "") + ".";
    banner.hidden = false;
  }

  function onMessage(data) {
    if (data.type === "dispute.changed") {
      schedule("disputes", flashRow('[data-dispute-id="' + data.dispute.id + '"]'));
      disputeNotice(data.dispute);
    } else if (data.type === "chat.changed") {
      if (window.mostroChat) { window.mostroChat.changed(data.dispute, data.messages); }
      schedule("chat");
    } else if (data.type === "orders.changed") {
      schedule("orders");
    }
  }

  function connect() {
    var socket = new WebSocket(socketUrl());
    socket.onopen = function () { document.body.dataset.liveConnected = "true"; };
    socket.onmessage = function (event) { onMessage(JSON.parse(event.data)); };
    socket.onclose = function (event) {
      document.body.dataset.liveConnected = "false";
      if (event.code !== 4403) { setTimeout(connect, RETRY_MS); }
    };
  }

  if ("WebSocket" in window) {
    document.addEventListener("DOMContentLoaded", connect);
  }
})();
