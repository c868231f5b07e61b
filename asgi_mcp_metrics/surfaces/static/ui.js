"use strict";
(function () {
  var CHARTS = [
    {id: "throughput", title: "Requests and tool calls per second",
     series: [["requests_per_second", "requests/s", "#3867d6"], ["tool_calls_per_second", "tool calls/s", "#20bf6b"]]},
    {id: "latency", title: "Tool call latency (seconds)",
     series: [["p50", "p50", "#20bf6b"], ["p95", "p95", "#f7b731"], ["p99", "p99", "#eb3b5a"]]},
    {id: "errors", title: "Errors (%)",
     series: [["tool_error_percent", "tool calls", "#eb3b5a"], ["http_error_percent", "HTTP 5xx", "#8854d0"]]},
    {id: "connections", title: "Active sessions, streams and requests",
     series: [["sessions", "sessions", "#3867d6"], ["streams", "streams", "#fa8231"], ["active_requests", "requests", "#4b6584"]]},
    {id: "backends", title: "Backends up and backend errors per second",
     series: [["backends_up", "up", "#20bf6b"], ["backend_errors_per_second", "errors/s", "#eb3b5a"]]},
    {id: "acl", title: "ACL denials and tokens per second",
     series: [["acl_denials_per_second", "denials/s", "#eb3b5a"], ["tokens_per_second", "tokens/s", "#0fb9b1"]]}
  ];
  var LIVE_SECONDS = 300;
  var state = {t: [], series: {}, source: null, range: "live"};
  var dashboard = {charts: [], updates: 0, errors: []};
  window.dashboard = dashboard;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Math.abs(v) >= 100) return v.toFixed(0);
    if (Math.abs(v) >= 1) return v.toFixed(2);
    return v.toPrecision(2);
  }

  function build() {
    var root = document.getElementById("charts");
    CHARTS.forEach(function (spec) {
      var box = el("section", {id: "chart-" + spec.id});
      box.appendChild(el("h2", {}, spec.title));
      var now = el("div", {"class": "now"});
      box.appendChild(now);
      root.appendChild(box);
      var opts = {
        width: Math.max(box.clientWidth - 20, 300), height: 170,
        scales: {x: {time: true}},
        series: [{}].concat(spec.series.map(function (s) {
          return {label: s[1], stroke: s[2], width: 1.5, spanGaps: true,
                  value: function (u, v) { return fmt(v); }};
        })),
        axes: [{}, {size: 50}],
        legend: {live: false}
      };
      var chart = new uPlot(opts, [[]].concat(spec.series.map(function () { return []; })), box);
      dashboard.charts.push({spec: spec, chart: chart, now: now});
    });
  }

  function redraw() {
    var t = state.t;
    dashboard.charts.forEach(function (c) {
      var data = [t].concat(c.spec.series.map(function (s) { return state.series[s[0]] || []; }));
      c.chart.setData(data);
      c.now.textContent = c.spec.series.map(function (s) {
        var values = state.series[s[0]] || [];
        return s[1] + ": " + fmt(values[values.length - 1]);
      }).join("   ");
    });
  }

  function tables(doc) {
    if (doc.scope) document.getElementById("scope").textContent = "showing " + doc.scope;
    var tools = document.querySelector("#tools tbody");
    tools.textContent = "";
    (doc.top_tools || []).forEach(function (row) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, row.tool));
      tr.appendChild(el("td", {"class": "n"}, String(row.calls)));
      tr.appendChild(el("td", {"class": "n"}, String(row.errors)));
      tools.appendChild(tr);
    });
    var backends = document.querySelector("#backends tbody");
    backends.textContent = "";
    Object.keys(doc.backends || {}).forEach(function (name) {
      var b = doc.backends[name];
      var tr = el("tr");
      tr.appendChild(el("td", {}, name));
      tr.appendChild(el("td", {"class": b.up ? "up" : "down"}, b.up ? "up" : "down"));
      tr.appendChild(el("td", {"class": "n"}, b.last_call_latency_seconds === null ? "–" : fmt(b.last_call_latency_seconds) + " s"));
      tr.appendChild(el("td", {}, b.last_error || ""));
      backends.appendChild(tr);
    });
  }

  function replace(doc) {
    state.t = doc.t.slice();
    state.series = {};
    Object.keys(doc.series).forEach(function (k) { state.series[k] = doc.series[k].slice(); });
    tables(doc);
    redraw();
  }

  function append(points) {
    points.t.forEach(function (t, i) {
      state.t.push(t);
      Object.keys(points.series).forEach(function (k) {
        (state.series[k] = state.series[k] || []).push(points.series[k][i]);
      });
    });
    var cutoff = state.t.length ? state.t[state.t.length - 1] - LIVE_SECONDS : 0;
    while (state.t.length && state.t[0] < cutoff) {
      state.t.shift();
      Object.keys(state.series).forEach(function (k) { state.series[k].shift(); });
    }
    redraw();
  }

  function status(text) { document.getElementById("status").textContent = text; }

  function stopLive() {
    if (state.source) { state.source.close(); state.source = null; }
  }

  function load(range) {
    state.range = range;
    stopLive();
    var seconds = range === "live" ? LIVE_SECONDS : Number(range);
    status("loading…");
    return fetch("ui/history?range=" + seconds, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error("history: HTTP " + r.status);
      return r.json();
    }).then(function (doc) {
      if (state.range !== range) return;
      replace(doc);
      document.body.setAttribute("data-range", range);
      if (range === "live") live(); else status("history, " + (doc.resolution === 1 ? "1 s" : "1 min") + " points");
    }).catch(function (e) { dashboard.errors.push(String(e)); status(String(e)); });
  }

  function live() {
    var source = new EventSource("ui/stream");
    state.source = source;
    source.addEventListener("update", function (ev) {
      var doc = JSON.parse(ev.data);
      if (doc.previous !== null) append(doc.points);
      tables(doc);
      dashboard.updates += 1;
      status("live · update " + doc.version);
    });
    source.addEventListener("disabled", function () { stopLive(); status("dashboard switched off"); });
    source.onerror = function () { status("reconnecting…"); };
  }

  build();
  document.getElementById("range").addEventListener("change", function (ev) { load(ev.target.value); });
  load("live");
})();
