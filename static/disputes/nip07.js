// Link a NIP-07 extension's key: sign this page's challenge (kind 22242, never published).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("link-nip07");
    var status = document.getElementById("nip07-status");
    if (!button) { return; }
    button.addEventListener("click", function () {
      if (!window.nostr) { status.textContent = "No NIP-07 extension found in this browser."; return; }
      var template = {
        kind: Number(button.dataset.kind), created_at: Math.floor(Date.now() / 1000),
        tags: [["challenge", button.dataset.challenge]], content: "Link this key to my Mostro solver login",
      };
      window.nostr.signEvent(template).then(function (event) {
        return fetch(button.dataset.url, {
          method: "POST", credentials: "same-origin", body: JSON.stringify({ event: event }),
          headers: { "Content-Type": "application/json",
            "X-CSRFToken": document.querySelector("[name=csrfmiddlewaretoken]").value },
        });
      }).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (result) {
          status.textContent = result.ok ? "Linked " + result.body.npub + "." : result.body.message;
          if (result.ok) { setTimeout(function () { window.location.reload(); }, 800); }
        })
        .catch(function (error) { status.textContent = "Not linked: " + error; });
    });
  });
})();
