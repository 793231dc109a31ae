/* Bastion console: our own small script (no framework, no build step).
 *
 * - Bastion.fetch(url, opts): fetch with the CSRF header and same-origin cookies.
 * - Bastion.subscribe(["alerts"], fn): one EventSource per page on /ui/stream; fn(topic, data).
 * - <element id="x" data-live="alerts,approvals">: refreshed in place (from a fresh GET of the page)
 *   when one of its topics fires; checked checkboxes and open <details> are kept. With
 *   data-live-every="10" it is refreshed at most every 10 s (a page that is costly to compute).
 * - <form data-confirm="Really?"> or <button data-confirm="..."> asks before submitting.
 * - <input type="checkbox" data-check-all="name"> ticks every checkbox named "name".
 * - <select data-autosubmit> submits its form on change.
 */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var handlers = [];
  var wanted = {};
  var source = null;

  function bfetch(url, opts) {
    opts = opts || {};
    var headers = new Headers(opts.headers || {});
    if (csrf) headers.set("X-CSRF-Token", csrf);
    opts.headers = headers;
    opts.credentials = "same-origin";
    return fetch(url, opts);
  }

  function setLive(on) {
    document.querySelectorAll(".live-dot").forEach(function (d) { d.classList.toggle("on", on); });
    document.body.setAttribute("data-stream", on ? "on" : "off");
  }

  function connect() {
    var topics = Object.keys(wanted);
    if (!topics.length || !window.EventSource) return;
    if (source) source.close();
    source = new EventSource("/ui/stream?topics=" + encodeURIComponent(topics.join(",")));
    source.addEventListener("ready", function () { setLive(true); });
    source.onerror = function () { setLive(false); };
    topics.forEach(function (t) {
      source.addEventListener(t, function (ev) {
        var data = {};
        try { data = JSON.parse(ev.data); } catch (e) { data = {}; }
        handlers.forEach(function (h) { if (h.topics.indexOf(t) >= 0) h.fn(t, data); });
      });
    });
  }

  var pending = null;
  function subscribe(topics, fn) {
    handlers.push({ topics: topics, fn: fn });
    topics.forEach(function (t) { wanted[t] = true; });
    if (pending) clearTimeout(pending);
    pending = setTimeout(connect, 0);
  }

  var refreshTimers = {};
  var lastRefresh = {};
  function refresh(id, minGapMs) {
    if (refreshTimers[id]) return;
    var wait = Math.max(250, (lastRefresh[id] || 0) + (minGapMs || 0) - Date.now());
    refreshTimers[id] = setTimeout(function () {
      delete refreshTimers[id];
      lastRefresh[id] = Date.now();
      bfetch(window.location.href, { headers: { "X-Bastion-Refresh": id } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(id);
          var old = document.getElementById(id);
          if (!fresh || !old) return;
          var checked = {};
          old.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) { checked[c.name + "=" + c.value] = true; });
          var open = {};
          old.querySelectorAll("details[open][id]").forEach(function (d) { open[d.id] = true; });
          var known = {};
          old.querySelectorAll("[data-row]").forEach(function (r) { known[r.getAttribute("data-row")] = true; });
          old.replaceWith(fresh);
          fresh.querySelectorAll("input[type=checkbox]").forEach(function (c) { if (checked[c.name + "=" + c.value]) c.checked = true; });
          fresh.querySelectorAll("details[id]").forEach(function (d) { if (open[d.id]) d.open = true; });
          fresh.querySelectorAll("[data-row]").forEach(function (r) { if (!known[r.getAttribute("data-row")]) r.classList.add("fresh"); });
          var n = parseInt(document.body.getAttribute("data-refreshes") || "0", 10) + 1;
          document.body.setAttribute("data-refreshes", String(n));
          document.dispatchEvent(new CustomEvent("bastion:refreshed", { detail: { id: id } }));
        })
        .catch(function () { /* the next event tries again */ });
    }, wait);
  }

  function live(el) {
    var topics = (el.getAttribute("data-live") || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (!el.id || !topics.length) return;
    var id = el.id;
    var gap = parseFloat(el.getAttribute("data-live-every") || "0") * 1000;
    subscribe(topics, function () { refresh(id, gap); });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var btn = ev.submitter;
    var msg = (btn && btn.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    if (!form.querySelector('input[name="csrf"]') && (form.method || "").toLowerCase() === "post" && csrf) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = "csrf"; input.value = csrf;
      form.appendChild(input);
    }
  });

  document.addEventListener("change", function (ev) {
    var el = ev.target;
    var all = el.getAttribute && el.getAttribute("data-check-all");
    if (all) {
      var scope = el.closest("form") || document;
      scope.querySelectorAll('input[type=checkbox][name="' + all + '"]').forEach(function (c) { c.checked = el.checked; });
    }
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.requestSubmit();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(live);
    document.body.setAttribute("data-ready", "1");
  });

  window.addEventListener("pagehide", function () { if (source) source.close(); });

  window.Bastion = { csrf: csrf, fetch: bfetch, subscribe: subscribe, refresh: refresh, live: live };
})();
