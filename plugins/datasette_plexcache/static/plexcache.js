/* plexcache: sync status footer, first-sync modal and the /-/plexcache page.
 *
 * Loaded on every Datasette page. Reads window.plexcacheConfig (written by
 * the plugin's extra_body_script) and talks to two endpoints:
 *   GET  statusUrl -> {track_count, synced_at, is_syncing, sync_progress, error, plex_connected}
 *   POST syncUrl   -> {started, blocking} | 409 {started: false, error}
 */
(function () {
  "use strict";

  var ACTIVE_MS = 1000; // poll interval while a sync runs or the modal is open
  var IDLE_MS = 5000; // otherwise: notice syncs started elsewhere (CLI, cron)
  var MAX_BACKOFF_MS = 10000;
  var AUTO_KEY = "plexcache:auto-sync-at";
  var AUTO_GUARD_MS = 10 * 60 * 1000; // never auto-start twice in 10 minutes

  // ---- formatting -------------------------------------------------------

  function formatCount(n) {
    return Number(n || 0).toLocaleString("en-US");
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function relativeTime(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "";
    var seconds = Math.max(0, Math.round(((now || Date.now()) - t) / 1000));
    if (seconds < 60) return "Just now";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return plural(minutes, "min") + " ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return plural(hours, "hour") + " ago";
    var days = Math.floor(hours / 24);
    if (days < 30) return plural(days, "day") + " ago";
    return "on " + new Date(t).toLocaleDateString("en-US", {
      year: "numeric", month: "short", day: "numeric"
    });
  }

  function lowerFirst(text) {
    // "Just now" reads "Synced just now" inside the footer sentence
    return text === "Just now" ? "just now" : text;
  }

  function percent(progress) {
    if (!progress || !progress.total) return 0;
    return Math.max(0, Math.min(100, Math.floor((progress.current * 100) / progress.total)));
  }

  function progressText(progress) {
    if (!progress || !progress.total) return "Connecting to Plex…";
    return formatCount(progress.current) + " / " + formatCount(progress.total) + " tracks";
  }

  function isStale(syncedAt, hours, now) {
    if (!syncedAt) return true;
    var t = Date.parse(syncedAt);
    if (isNaN(t)) return true;
    return (now || Date.now()) - t > hours * 3600 * 1000;
  }

  // ---- tiny DOM helpers -------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function setProgressBar(bar, progress) {
    var fill = bar.querySelector(".plexcache-progress-fill");
    if (progress && progress.total) {
      bar.classList.remove("plexcache-indeterminate");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", String(progress.total));
      bar.setAttribute("aria-valuenow", String(progress.current));
      bar.setAttribute("aria-valuetext", progressText(progress));
      fill.style.width = percent(progress) + "%";
    } else {
      // Unknown total: an indeterminate bar has no aria-valuenow.
      bar.classList.add("plexcache-indeterminate");
      bar.removeAttribute("aria-valuenow");
      bar.setAttribute("aria-valuetext", progressText(progress));
      fill.style.width = "";
    }
  }

  function progressBar(label) {
    return el("div", {
      className: "plexcache-progress plexcache-indeterminate",
      role: "progressbar",
      "aria-label": label,
      "aria-valuemin": "0"
    }, [el("div", { className: "plexcache-progress-fill" })]);
  }

  // ---- API --------------------------------------------------------------

  function csrfToken(cfg) {
    if (cfg.csrftoken) return cfg.csrftoken;
    var match = document.cookie.match(/(?:^|;\s*)ds_csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function getStatus(cfg) {
    return fetch(cfg.statusUrl, {
      headers: { accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (r) {
      if (!r.ok) throw new Error("status " + r.status);
      return r.json();
    });
  }

  function postSync(cfg, full) {
    return fetch(cfg.syncUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        accept: "application/json",
        "content-type": "application/json",
        "x-csrftoken": csrfToken(cfg)
      },
      body: JSON.stringify({ full: !!full })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        return { status: r.status, body: body };
      });
    });
  }

  function recentlyAutoStarted() {
    try {
      var at = Number(window.sessionStorage.getItem(AUTO_KEY) || 0);
      return Date.now() - at < AUTO_GUARD_MS;
    } catch (e) {
      return false;
    }
  }

  function markAutoStarted() {
    try { window.sessionStorage.setItem(AUTO_KEY, String(Date.now())); } catch (e) { /* private mode */ }
  }

  // ---- footer -----------------------------------------------------------

  function Footer(app) {
    this.app = app;
    this.node = el("div", {
      id: "plexcache-footer",
      className: "plexcache-footer",
      role: "status",
      "aria-live": "polite"
    });
    this.line = el("span", { className: "plexcache-footer-line" });
    this.detail = el("div", { className: "plexcache-footer-error" });
    this.node.appendChild(this.line);
    this.node.appendChild(this.detail);
    var footer = document.querySelector("footer.ft");
    if (footer) footer.insertBefore(this.node, footer.firstChild);
    else document.body.appendChild(this.node);
    this.message = null;
  }

  Footer.prototype.flash = function (text) {
    this.message = text;
  };

  Footer.prototype.render = function (s, reconnecting) {
    var app = this.app;
    var parts = [];
    if (s) {
      parts.push(el("span", { className: "plexcache-count", text: formatCount(s.track_count) + (s.track_count === 1 ? " track" : " tracks") }));
      if (s.is_syncing) {
        parts.push(el("span", {
          className: "plexcache-syncing",
          text: s.sync_progress && s.sync_progress.total ? "Syncing " + percent(s.sync_progress) + "%" : "Syncing…"
        }));
      } else {
        parts.push(el("span", {
          className: "plexcache-synced",
          title: s.synced_at || "",
          text: s.synced_at ? "Synced " + lowerFirst(relativeTime(s.synced_at)) : "Never synced"
        }));
      }
    }
    if (reconnecting) {
      parts.push(el("span", { className: "plexcache-reconnecting", text: "Reconnecting…" }));
    } else if (s && !s.plex_connected) {
      parts.push(el("span", { className: "plexcache-offline", text: "Plex offline" }));
    }
    if (s && !s.is_syncing && s.plex_connected && !reconnecting && app.cfg.canSync) {
      var button = el("button", { type: "button", className: "plexcache-refresh button-as-link", text: "Refresh" });
      button.addEventListener("click", function () { app.refresh(button); });
      parts.push(button);
    }
    if (!s && !reconnecting) return;
    this.line.textContent = "";
    var line = this.line;
    parts.forEach(function (part, i) {
      if (i) line.appendChild(document.createTextNode(" · "));
      line.appendChild(part);
    });
    var detail = "";
    if (this.message) detail = this.message;
    else if (s && s.error) detail = (s.plex_connected ? "Last sync failed: " : "") + s.error;
    this.detail.textContent = detail;
    this.detail.hidden = !detail;
    this.node.classList.toggle("plexcache-has-error", !!(s && s.error));
  };

  // ---- modal ------------------------------------------------------------

  function Modal(app) {
    this.app = app;
    this.sawSyncing = false;
    this.requested = false;
    this.title = el("h2", { id: "plexcache-modal-title", text: "Syncing your Plex library" });
    this.text = el("p", { id: "plexcache-modal-text", className: "plexcache-modal-text", text: "Fetching tracks from Plex…" });
    this.bar = progressBar("Sync progress");
    this.count = el("p", { className: "plexcache-modal-count", text: "Connecting to Plex…" });
    this.note = el("p", {
      className: "plexcache-modal-note",
      text: "This first sync copies your library into a local cache; later visits load instantly."
    });
    this.actions = el("div", { className: "plexcache-modal-actions" });
    this.actions.hidden = true;
    this.dialog = el("div", {
      className: "plexcache-modal",
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": "plexcache-modal-title",
      "aria-describedby": "plexcache-modal-text",
      tabindex: "-1"
    }, [this.title, this.text, this.bar, this.count, this.note, this.actions]);
    this.overlay = el("div", { className: "plexcache-overlay", id: "plexcache-modal" }, [this.dialog]);
  }

  Modal.prototype.open = function () {
    var overlay = this.overlay;
    this.inerted = [];
    var self = this;
    Array.prototype.forEach.call(document.body.children, function (child) {
      if (child !== overlay && child.tagName !== "SCRIPT" && !child.inert) {
        child.inert = true;
        self.inerted.push(child);
      }
    });
    document.body.appendChild(overlay);
    document.body.classList.add("plexcache-modal-open");
    this.dialog.focus();
  };

  Modal.prototype.close = function () {
    this.inerted.forEach(function (child) { child.inert = false; });
    this.overlay.remove();
    document.body.classList.remove("plexcache-modal-open");
  };

  Modal.prototype.render = function (s, reconnecting) {
    if (reconnecting) {
      this.text.textContent = "Reconnecting…";
      return;
    }
    if (!s) return;
    this.text.textContent = s.sync_progress && s.sync_progress.total
      ? "Fetching tracks from Plex…"
      : "Connecting to Plex…";
    setProgressBar(this.bar, s.sync_progress);
    this.count.textContent = progressText(s.sync_progress);
  };

  Modal.prototype.fail = function (message) {
    var app = this.app;
    var self = this;
    this.title.textContent = "The sync did not finish";
    this.text.textContent = message || "The sync stopped with an error.";
    this.bar.hidden = true;
    this.count.hidden = true;
    this.note.hidden = true;
    this.actions.textContent = "";
    var retry = el("button", { type: "button", className: "plexcache-button", text: "Try again" });
    var close = el("button", { type: "button", className: "plexcache-button plexcache-secondary", text: "Close" });
    retry.addEventListener("click", function () {
      self.close();
      app.modal = null;
      app.startBlocking();
    });
    close.addEventListener("click", function () {
      self.close();
      app.modal = null;
      app.tick();
    });
    this.actions.appendChild(retry);
    this.actions.appendChild(close);
    this.actions.hidden = false;
    this.failed = true;
    retry.focus();
  };

  // ---- the /-/plexcache page -------------------------------------------

  function Page(app, root) {
    this.app = app;
    this.root = root;
    this.bar = root.querySelector(".plexcache-progress");
    var form = root.querySelector("form.plexcache-sync-form");
    if (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var full = form.querySelector("input[name=full]");
        app.refresh(form.querySelector("button"), full && full.checked);
      });
    }
  }

  Page.prototype.field = function (name, text) {
    var node = this.root.querySelector("[data-plexcache=" + name + "]");
    if (node) node.textContent = text;
    return node;
  };

  Page.prototype.render = function (s, reconnecting) {
    if (reconnecting) {
      this.field("state", "Reconnecting…");
      return;
    }
    if (!s) return;
    this.field("track_count", formatCount(s.track_count));
    var synced = this.field("synced_at", s.synced_at ? relativeTime(s.synced_at) : "Never");
    if (synced) synced.title = s.synced_at || "";
    this.field("plex", s.plex_connected ? "Connected" : "Offline");
    this.field("state", s.is_syncing ? "Syncing " + percent(s.sync_progress) + "%" : "Idle");
    var errorNode = this.field("error", s.error || "");
    if (errorNode) errorNode.hidden = !s.error;
    if (this.bar) {
      this.bar.parentNode.hidden = !s.is_syncing;
      if (s.is_syncing) setProgressBar(this.bar, s.sync_progress);
    }
    this.field("progress_text", s.is_syncing ? progressText(s.sync_progress) : "");
    var button = this.root.querySelector("form.plexcache-sync-form button");
    if (button) button.disabled = s.is_syncing || !this.app.cfg.canSync;
  };

  Page.prototype.loadRuns = function () {
    var tbody = this.root.querySelector("tbody[data-plexcache=runs]");
    if (!tbody) return;
    fetch(this.app.cfg.runsUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        tbody.textContent = "";
        (data.runs || []).forEach(function (run) { tbody.appendChild(runRow(run)); });
        var empty = document.querySelector("[data-plexcache=no-runs]");
        if (empty) empty.hidden = (data.runs || []).length > 0;
        if (window.plexcacheCharts) window.plexcacheCharts.update("runs", data.chart);
      })
      .catch(function () { /* keep the rows we have */ });
  };

  function formatDuration(ms) {
    if (ms === null || ms === undefined) return "";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(Math.round(s) / 60);
    if (m < 60) return m + " min " + (Math.round(s) % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function runRow(run) {
    var when = el("time", { datetime: run.started_at || "", title: run.started_at || "", text: relativeTime(run.started_at) });
    var progress = run.status === "running"
      ? (run.phase ? run.phase + ": " : "") + formatCount(run.progress_current) + " / " + formatCount(run.progress_total)
      : "";
    var cells = [
      el("td", {}, [when]),
      el("td", { text: run.mode || "" }),
      el("td", { text: run.trigger || "" }),
      el("td", { className: "plexcache-run-" + (run.status || ""), text: run.status || "" }),
      el("td", { text: formatDuration(run.duration_ms) || progress }),
      el("td", { className: "plexcache-num", text: formatCount(run.tracks_added) }),
      el("td", { className: "plexcache-num", text: formatCount(run.tracks_updated) }),
      el("td", { className: "plexcache-num", text: formatCount(run.tracks_removed) }),
      el("td", { className: "plexcache-run-error", text: run.error || run.warning || "" })
    ];
    return el("tr", {}, cells);
  }

  // ---- the app: one polling loop drives footer, modal and page ----------

  function App(cfg) {
    this.cfg = cfg;
    this.status = null;
    this.failures = 0;
    this.timer = null;
    this.modal = null;
    this.wasSyncing = false;
    this.footer = new Footer(this);
    var root = document.getElementById("plexcache-page");
    this.page = root ? new Page(this, root) : null;
    if (this.page) this.page.loadRuns(); // relative times instead of the server's ISO
  }

  App.prototype.schedule = function (ms) {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.tick(); }, ms);
  };

  App.prototype.nextDelay = function () {
    if (this.failures) return Math.min(ACTIVE_MS * Math.pow(2, this.failures - 1), MAX_BACKOFF_MS);
    if (this.modal || (this.status && this.status.is_syncing)) return ACTIVE_MS;
    return document.hidden ? IDLE_MS * 3 : IDLE_MS;
  };

  App.prototype.tick = function () {
    var self = this;
    clearTimeout(this.timer);
    return getStatus(this.cfg).then(function (s) {
      self.failures = 0;
      self.update(s);
    }, function () {
      self.failures += 1;
      self.render(null, true);
    }).then(function () {
      self.schedule(self.nextDelay());
    });
  };

  App.prototype.render = function (s, reconnecting) {
    this.footer.render(s || this.status, reconnecting);
    if (this.modal && !this.modal.failed) this.modal.render(s, reconnecting);
    if (this.page) this.page.render(s, reconnecting);
  };

  App.prototype.update = function (s) {
    var finished = this.wasSyncing && !s.is_syncing;
    // a sync shorter than the idle poll interval shows only as a new synced_at
    var changed = this.wasSyncing !== s.is_syncing ||
      Boolean(this.status && this.status.synced_at !== s.synced_at);
    this.status = s;
    this.wasSyncing = s.is_syncing;
    if (finished) this.footer.message = null;
    this.render(s, false);
    if (this.page && (changed || s.is_syncing)) this.page.loadRuns(); // runs started, moving or ended
    if (this.modal && !this.modal.failed) {
      if (s.is_syncing) this.modal.sawSyncing = true;
      else if (this.modal.sawSyncing || this.modal.requested) this.finishBlocking(s);
    }
    document.dispatchEvent(new CustomEvent("plexcache:status", { detail: s }));
  };

  App.prototype.finishBlocking = function (s) {
    if (s.track_count > 0) {
      this.modal.text.textContent = "Done: " + formatCount(s.track_count) + " tracks. Loading…";
      window.location.reload();
      return;
    }
    if (s.error) {
      this.modal.fail(s.error);
      return;
    }
    this.modal.close(); // the library is empty: nothing to wait for
    this.modal = null;
  };

  App.prototype.startBlocking = function () {
    var self = this;
    this.modal = new Modal(this);
    this.modal.open();
    this.modal.render(this.status, false);
    if (this.status && this.status.is_syncing) {
      this.modal.sawSyncing = true; // started elsewhere (server start, CLI): just follow it
      this.schedule(ACTIVE_MS);
      return Promise.resolve();
    }
    markAutoStarted();
    return postSync(this.cfg).then(function (r) {
      if (!self.modal) return;
      if (r.status === 200 || r.status === 409) {
        self.modal.requested = true; // 409: someone else's sync, wait for it
      } else {
        self.modal.fail(r.body.error || "Could not start a sync (HTTP " + r.status + ")");
      }
    }, function () {
      if (self.modal) self.modal.requested = true; // server going away: keep polling
    }).then(function () { return self.tick(); });
  };

  App.prototype.refresh = function (button, full) {
    var self = this;
    if (button) button.disabled = true;
    this.footer.message = null;
    return postSync(this.cfg, full).then(function (r) {
      if (r.status === 409) self.footer.message = "Sync already in progress";
      else if (r.status !== 200) self.footer.message = r.body.error || "Could not start a sync (HTTP " + r.status + ")";
    }, function () {
      self.footer.message = "Could not reach the server";
    }).then(function () {
      if (button) button.disabled = false;
      return self.tick();
    });
  };

  App.prototype.start = function () {
    var self = this;
    var cfg = this.cfg;
    return getStatus(cfg).then(function (s) {
      self.status = s;
      self.wasSyncing = s.is_syncing;
      var mayAutoSync = !s.is_syncing && s.plex_connected && cfg.canSync && !recentlyAutoStarted();
      var firstSync = s.track_count === 0 && !s.synced_at;
      if (!cfg.progressPage && s.track_count === 0 && (s.is_syncing || (firstSync && mayAutoSync))) {
        return self.startBlocking();
      }
      self.update(s);
      if (mayAutoSync && (firstSync || isStale(s.synced_at, cfg.staleAfterHours))) {
        markAutoStarted();
        return postSync(cfg).then(function () { return self.tick(); }, function () { return self.tick(); });
      }
      self.schedule(self.nextDelay());
    }, function () {
      self.failures += 1;
      self.render(null, true);
      self.schedule(self.nextDelay());
    });
  };

  window.plexcache = {
    formatCount: formatCount,
    relativeTime: relativeTime,
    percent: percent,
    progressText: progressText,
    isStale: isStale
  };

  function boot() {
    var cfg = window.plexcacheConfig;
    if (!cfg || window.plexcache.app) return;
    var app = new App(cfg);
    window.plexcache.app = app;
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) app.tick();
    });
    app.start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
