// Live dispute updates for the solver console (no framework, no CDN).
// The queue re-renders its results table in place; a dispute page shows a banner.
(function () {
  "use strict";
  var RETRY_MS = 3000;

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + "/ws/staff/disputes/";
  }

  function refreshQueue(changedId) {
    var table = document.getElementById("result_list");
    if (!table) { return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("result_list");
        if (!fresh) { return; }
        table.replaceWith(fresh);
        var cell = document.querySelector('[data-dispute-id="' + changedId + '"]');
        if (cell) {
          var row = cell.closest("tr");
          row.classList.add("dispute-changed");
          row.style.transition = "background-color 2s";
          row.style.backgroundColor = "#fff3bf";
          setTimeout(function () { row.style.backgroundColor = ""; }, 2000);
        }
        document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
      });
  }

  function showBanner(dispute) {
    var marker = document.getElementById("dispute-live");
    if (!marker || marker.dataset.disputeId !== dispute.id) { return; }
    var banner = document.getElementById("dispute-live-banner");
    banner.querySelector("p").innerHTML = "";
    banner.querySelector("p").append(
      "This dispute changed: now " + dispute.status +
      (dispute.solver_pubkey ? " (solver " + dispute.solver_pubkey.slice(0, 12) + "…)" : "") + ". "
    );
    var link = document.createElement("a");
    link.href = window.location.pathname;
    link.textContent = "Reload to see the latest.";
    banner.querySelector("p").append(link);
    banner.hidden = false;
  }

  function connect() {
    var socket = new WebSocket(socketUrl());
    socket.onopen = function () { document.body.dataset.liveConnected = "true"; };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.type !== "dispute.changed") { return; }
      refreshQueue(data.dispute.id);
      showBanner(data.dispute);
    };
    socket.onclose = function (event) {
      document.body.dataset.liveConnected = "false";
      if (event.code !== 4403) { setTimeout(connect, RETRY_MS); }
    };
  }

  if ("WebSocket" in window) {
    document.addEventListener("DOMContentLoaded", connect);
  }
})();
