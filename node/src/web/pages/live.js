// ChainCore dashboard script (plain JavaScript, no build step). It records script errors on
// <html data-js-errors> (the end-to-end test reads the rendered DOM for it), ticks the ages
// of blocks every second, and on a new tip or a mempool change from /rest/events fetches the
// live part of the dashboard again and swaps it in, without reloading the page.
(function () {
  "use strict";
  var root = document.documentElement;

  function report(message) {
    var before = root.getAttribute("data-js-errors");
    root.setAttribute("data-js-errors", (before ? before + " | " : "") + String(message));
  }
  window.addEventListener("error", function (e) {
    report(e.message || "error loading " + ((e.target && e.target.src) || "a resource"));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    report("unhandled rejection: " + ((e.reason && e.reason.message) || e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    report(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  // The same words as the server's `duration` and `age`.
  function age(secs) {
    return secs < 0 ? duration(-secs) + " ahead" : duration(secs) + " ago";
  }
  function duration(secs) {
    var sign = secs < 0 ? "-" : "";
    var s = Math.abs(secs);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    var m = Math.floor(s / 60) % 60;
    s = s % 60;
    if (d > 0) return sign + d + "d " + h + "h";
    if (h > 0) return sign + h + "h " + m + "m";
    if (m > 0) return sign + m + "m " + s + "s";
    return sign + s + "s";
  }

  function tickAges() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".age[data-time]").forEach(function (el) {
      el.textContent = age(Math.round(now - Number(el.getAttribute("data-time"))));
    });
  }

  var busy = false, again = false, refreshes = 0;
  function refresh(live) {
    if (busy) { again = true; return; }
    busy = true;
    var started = performance.now();
    fetch(live.getAttribute("data-part") + location.search, { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("the node answered " + r.status);
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        refreshes += 1;
        root.setAttribute("data-refreshes", String(refreshes));
        root.setAttribute("data-refresh-ms", (performance.now() - started).toFixed(1));
        root.setAttribute("data-refreshed-at", String(Date.now()));
        tickAges();
      })
      // The node restarting or gone is not a script error: say so and try on the next event.
      .catch(function (e) { root.setAttribute("data-live", "offline: " + e.message); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(live); }
      });
  }

  function timings() {
    var nav = performance.getEntriesByType("navigation")[0];
    if (nav) root.setAttribute("data-dom-ms", nav.domContentLoadedEventEnd.toFixed(1));
    performance.getEntriesByType("paint").forEach(function (p) {
      root.setAttribute("data-" + p.name, p.startTime.toFixed(1));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tickAges();
    setInterval(tickAges, 1000);
    var live = document.getElementById("live");
    if (live && window.EventSource) {
      var height = live.getAttribute("data-height");
      var pool = live.getAttribute("data-mempool");
      var events = new EventSource("/rest/events");
      events.onopen = function () { root.setAttribute("data-live", "connected"); };
      events.onerror = function () { root.setAttribute("data-live", "reconnecting"); };
      events.addEventListener("tip", function (e) {
        var tip = JSON.parse(e.data);
        root.setAttribute("data-live-height", String(tip.height));
        if (String(tip.height) !== height) {
          height = String(tip.height);
          live.setAttribute("data-height", height);
          refresh(live);
        }
      });
      events.addEventListener("mempool", function (e) {
        var m = JSON.parse(e.data);
        if (String(m.size) !== pool) {
          pool = String(m.size);
          live.setAttribute("data-mempool", pool);
          refresh(live);
        }
      });
    }
    root.setAttribute("data-js", "ready");
  });
  window.addEventListener("load", function () { setTimeout(timings, 0); });
})();
