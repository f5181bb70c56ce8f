/* plexcache: the live cache (`plexcache watch`) in the footer and on the progress page,
 * and pages that show counts reloaded when a change lands.
 *
 * Follows plexcache.js's status poll (the "plexcache:status" event) and reads
 *   GET liveUrl -> {enabled, running, state, since, detail, last_event_at, last_change_at, text}
 * A change landed when the status's synced_at or track_count moved (every live
 * sync writes them). Pages showing counts (home, database, table) then reload,
 * unless the reader is typing or the tab is hidden (they reload when it shows).
 */
(function () {
  "use strict";

  var first = null; // the status this page was rendered with
  var pending = false; // a change landed; reload when it is safe
  var fetching = false;

  function showsCounts() {
    var c = document.body.classList;
    return !document.getElementById("plexcache-page") && (c.contains("index") || c.contains("db") || c.contains("table"));
  }

  function busy() {
    var a = document.activeElement;
    if (a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return true;
    if (document.querySelector(".plexcache-modal, dialog[open]")) return true;
    var sel = window.getSelection && window.getSelection();
    return Boolean(sel && String(sel).length);
  }

  function footerNode() {
    var node = document.getElementById("plexcache-live");
    var footer = document.getElementById("plexcache-footer");
    if (!node && footer) {
      node = document.createElement("span");
      node.id = "plexcache-live";
      node.className = "plexcache-live";
      footer.insertBefore(node, footer.children[1] || null);
    }
    return node;
  }

  function render(live) {
    var node = footerNode();
    if (node) {
      var on = live.running && live.state === "connected";
      node.textContent = live.running ? (on ? "● Live" : live.state === "polling" ? "Checking every minute" : "Live: " + live.state) : "";
      node.title = live.text + (live.detail ? " (" + live.detail + ")" : "");
      node.hidden = !live.running;
      node.className = "plexcache-live plexcache-live-" + (live.running ? live.state : "stopped");
    }
    var field = document.querySelector("[data-plexcache=live]");
    if (field) {
      field.textContent = live.text;
      field.title = live.detail || "";
      field.className = "plexcache-live-" + (live.running ? live.state : "stopped");
    }
  }

  function poll(cfg) {
    if (fetching || !cfg.liveUrl) return;
    fetching = true;
    fetch(cfg.liveUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (live) { if (live) render(live); })
      .catch(function () { /* the status poll shows the server is away */ })
      .then(function () { fetching = false; });
  }

  function onStatus(ev) {
    var s = ev.detail;
    var cfg = window.plexcacheConfig || {};
    poll(cfg);
    if (!s) return;
    if (first === null) {
      first = s;
      return;
    }
    if (!s.is_syncing && (s.synced_at !== first.synced_at || s.track_count !== first.track_count)) {
      pending = true;
    }
    if (pending && showsCounts() && !document.hidden && !busy() && first.track_count > 0) {
      window.location.reload();
    }
  }

  document.addEventListener("plexcache:status", onStatus);
})();
