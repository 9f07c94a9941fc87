// The dispute chat panel: one conversation per party, live (ids pushed over ws/staff/live/,
// messages fetched from the console), written through the outbox. No framework, no CDN.
(function () {
  "use strict";
  var STATES = { queued: "queued", sent: "sent to relays", accepted: "accepted", failed: "failed", received: "received" };
  var panel, messages = {}, current = "buyer", base;

  function utc(iso) {
    var d = new Date(iso);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  function size(bytes) {
    if (bytes == null) { return ""; }
    return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? (bytes / 1024).toFixed(1) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }

  function render(message) {
    var el = document.createElement("div");
    el.className = "msg " + (message.direction === "out" ? "out" : "in");
    el.dataset.messageId = message.id;
    el.dataset.party = message.party;
    el.dataset.direction = message.direction;
    el.dataset.state = message.state;
    var body = document.createElement("div");
    body.className = "text";
    if (message.attachment) {
      var url = base + "chat/" + message.id + "/attachment/";
      var link = document.createElement("a");
      link.href = url;
      link.className = "attachment-link";
      link.textContent = (message.attachment.kind === "image" ? "Image: " : "File: ") + message.attachment.filename +
        (message.attachment.size ? " (" + size(message.attachment.size) + ")" : "");
      body.appendChild(link);
      if (message.attachment.inline) {
        var img = document.createElement("img");
        img.className = "attachment";
        img.loading = "lazy";
        img.alt = message.attachment.filename;
        img.src = url;
        body.appendChild(img);
      }
    } else {
      body.textContent = message.text;
    }
    el.appendChild(body);
    var meta = document.createElement("div");
    meta.className = "meta";
    var who = message.direction === "out" ? "You" + (message.author ? " (" + message.author.replace("admin:", "") + ")" : "") : message.party;
    meta.append(who + " · " + utc(message.sent_at));
    var badge = document.createElement("span");
    badge.className = "badge badge-" + message.state;
    badge.textContent = STATES[message.state] + (message.state === "accepted" && message.relays ? " by " + message.relays + " relay" + (message.relays > 1 ? "s" : "") : "");
    meta.appendChild(badge);
    el.appendChild(meta);
    return el;
  }

  function upsert(list) {
    list.forEach(function (message) {
      var fresh = !messages[message.id];
      messages[message.id] = message;
      var log = panel.querySelector('.chat-log[data-party="' + message.party + '"]');
      var old = log.querySelector('[data-message-id="' + message.id + '"]');
      var el = render(message);
      if (old) {
        // Only the delivery state changes: swap the meta line, keep the body (an image stays loaded).
        old.dataset.state = message.state;
        old.querySelector(".meta").replaceWith(el.querySelector(".meta"));
      } else {
        var empty = log.querySelector(".chat-empty");
        if (empty) { empty.remove(); }
        var after = Array.prototype.find.call(log.querySelectorAll(".msg"), function (other) {
          return messages[other.dataset.messageId].sent_at > message.sent_at;
        });
        log.insertBefore(el, after || null);
        log.scrollTop = log.scrollHeight;
        if (fresh && message.party !== current && message.direction === "in") { unread(message.party, 1); }
      }
    });
    panel.dataset.count = String(Object.keys(messages).length);
  }

  function unread(party, delta) {
    var mark = panel.querySelector('.chat-tabs [data-party="' + party + '"] .unread');
    var value = delta ? Number(mark.dataset.count || 0) + delta : 0;
    mark.dataset.count = String(value);
    mark.textContent = value ? "● " + value : "";
  }

  function select(party) {
    current = party;
    panel.querySelectorAll(".chat-tabs button").forEach(function (tab) {
      tab.setAttribute("aria-selected", String(tab.dataset.party === party));
    });
    panel.querySelectorAll(".chat-log").forEach(function (log) { log.hidden = log.dataset.party !== party; });
    unread(party, 0);
    var input = panel.querySelector("textarea");
    if (input) { input.placeholder = "Write to the " + party + "…"; }
  }

  function fetchMessages(query) {
    return fetch(base + "chat/?" + query, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
      .then(function (data) { upsert(data.messages); });
  }

  function send(event) {
    event.preventDefault();
    var form = event.target, input = form.querySelector("textarea"), error = panel.querySelector(".chat-error");
    if (!input.value.trim()) { return; }
    var data = new FormData();
    data.append("party", current);
    data.append("text", input.value);
    form.querySelector("button").disabled = true;
    fetch(base + "chat/send/", {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
    }).then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (result) {
        if (result.ok) { input.value = ""; error.textContent = ""; upsert(result.body.messages); }
        else { error.textContent = result.body.message || "Not sent."; }
      })
      .catch(function () { error.textContent = "Not sent: the console could not be reached."; })
      .finally(function () { form.querySelector("button").disabled = false; input.focus(); });
  }

  function init() {
    panel = document.getElementById("dispute-chat");
    if (!panel) { return; }
    base = panel.dataset.base;
    var initial = document.getElementById("chat-initial");
    upsert(initial ? JSON.parse(initial.textContent) : []);
    panel.querySelectorAll(".chat-tabs button").forEach(function (tab) {
      tab.addEventListener("click", function () { select(tab.dataset.party); });
    });
    var form = panel.querySelector("form");
    if (form) {
      form.addEventListener("submit", send);
      form.querySelector("textarea").addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { send({ preventDefault: function () {}, target: form }); }
      });
    }
    select("buyer");
    window.mostroChat = {
      changed: function (disputeId, ids) {
        if (disputeId === panel.dataset.disputeId && ids.length) { fetchMessages("ids=" + ids.join(",")); }
      },
    };
  }

  document.addEventListener("DOMContentLoaded", init);
})();
