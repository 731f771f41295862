// The phone page's visits kept without signal. A visit form's submission is written to this phone's storage first,
// with the id the page gave the visit, and sent from there whenever a connection is there (at once, when the browser
// comes back online, and every 30 s). A visit leaves storage only once the console has answered that it is recorded;
// an answer lost on the way means the visit is sent again with the same id, and matching records an id only once.
"use strict";
(function () {
  var KEY = "handinhand.visits";
  var queueBox = document.getElementById("queue");
  var sending = false;

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || []; } catch (error) { return []; }
  }
  function save(queue) { localStorage.setItem(KEY, JSON.stringify(queue)); }
  function csrf() { return document.querySelector("meta[name=csrf-token]").content; }

  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 15) | 64;
    bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function pad(number) { return String(number).padStart(2, "0"); }
  // "2026-11-30T14:05" as the phone's clock read it, with the phone's zone: the visit keeps its own time.
  function withZone(local) {
    var offset = -new Date(local).getTimezoneOffset();
    var sign = offset >= 0 ? "+" : "-";
    offset = Math.abs(offset);
    return local + ":00" + sign + pad(Math.floor(offset / 60)) + ":" + pad(offset % 60);
  }

  function render(sentNow) {
    if (!queueBox) { return; }
    var queue = load();
    var list = queueBox.querySelector("ul");
    list.textContent = "";
    queue.forEach(function (item) {
      var line = document.createElement("li");
      var what = queueBox.dataset.visitOf.replace("{when}", item.visit.occurred_at.slice(0, 16).replace("T", " "))
        .replace("{child}", item.child);
      var state = item.state === "refused" ? queueBox.dataset.refused + " " + (item.reason || "")
        : item.state === "sign-in" ? queueBox.dataset.signIn : queueBox.dataset.waiting;
      line.textContent = what + " — " + state;
      line.dataset.contact = item.visit.contact_id;
      line.className = "queued " + item.state;
      list.appendChild(line);
    });
    if (sentNow) {
      var done = document.createElement("li");
      done.className = "sent";
      done.textContent = queueBox.dataset.sent;
      list.appendChild(done);
    }
    queueBox.hidden = queue.length === 0 && !sentNow;
  }

  function mark(contactId, state, reason) {
    save(load().map(function (item) {
      return item.visit.contact_id === contactId ? Object.assign(item, { state: state, reason: reason }) : item;
    }));
  }
  function forget(contactId) {
    save(load().filter(function (item) { return item.visit.contact_id !== contactId; }));
  }

  async function flush() {
    if (sending) { return; }
    sending = true;
    var sent = false;
    try {
      for (var item of load()) {
        if (item.state === "refused") { continue; }
        var answer;
        try {
          answer = await fetch("/my/visits", {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
            body: JSON.stringify(item.visit),
          });
        } catch (error) {
          break; // no connection: kept, sent again later
        }
        var body = await answer.json().catch(function () { return null; });
        if (answer.ok && body && body.status === "recorded") {
          forget(item.visit.contact_id);
          sent = true;
        } else if (answer.redirected || answer.status === 401 || answer.status === 403 && !body) {
          mark(item.visit.contact_id, "sign-in"); // the session ended: sent after signing in again
          break;
        } else if (answer.status >= 400 && answer.status < 500 && answer.status !== 429 && body && body.error) {
          mark(item.visit.contact_id, "refused", body.error.message);
        } else {
          break; // the service is busy or away: kept, sent again later
        }
      }
    } finally {
      sending = false;
      render(sent);
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-visit-queue]")) { return; }
    event.preventDefault();
    var data = new FormData(form);
    var visit = {
      contact_id: data.get("contact_id"),
      pairing_id: data.get("pairing_id"),
      kind: data.get("kind"),
      in_person: data.get("in_person") === "on",
      occurred_at: withZone(data.get("occurred_at")),
      duration_minutes: Number(data.get("duration_minutes") || 0),
      note: data.get("note") || "",
    };
    var queue = load();
    queue.push({ visit: visit, child: form.dataset.child, state: "waiting" });
    save(queue);
    form.querySelector("[name=contact_id]").value = newId(); // the next visit logged here is another one
    form.querySelector("[name=note]").value = "";
    var details = form.closest("details");
    if (details) { details.open = false; }
    render(false);
    flush();
  });

  window.addEventListener("online", flush);
  setInterval(flush, 30000);
  render(false);
  flush();
})();
