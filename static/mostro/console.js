// Console helpers without a framework or CDN: copy buttons and live countdowns.
(function () {
  "use strict";
  function copy(button) {
    var text = button.dataset.copy;
    var done = function () {
      button.classList.add("copied");
      button.textContent = "copied";
      setTimeout(function () { button.classList.remove("copied"); button.textContent = "copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  }
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
    window.__lastCopied = text;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".copy-btn");
    if (button) { event.preventDefault(); copy(button); }
  });

  // <span data-countdown="unix seconds">: "in 3 h 12 min" / "5 min ago", refreshed every 30 s.
  function words(seconds) {
    var s = Math.abs(seconds), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    var text = d ? d + " d " + h + " h" : h ? h + " h " + m + " min" : m ? m + " min" : Math.floor(s) + " s";
    return seconds >= 0 ? "in " + text : text + " ago";
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      el.textContent = words(Number(el.dataset.countdown) - now);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = words(Number(el.dataset.since) - now).replace(" ago", "");
    });
  }
  window.mostroTick = tick;
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 30000); });
})();
