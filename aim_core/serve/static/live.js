// aim serve: live updates of the dashboard (shipped in the package; no CDN).
// Polls the read-only /api/live endpoint and rewrites the runs in progress, the first
// page of recent runs and the headline figures. Text only (textContent): audit
// fields are user text and never become markup.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-live");
  if (!url) return;
  var every = parseInt(body.getAttribute("data-poll-ms") || "2000", 10);
  var page = parseInt(body.getAttribute("data-page") || "1", 10);
  var generation = null;

  function pct(v) { return (v * 100).toFixed(1) + "%"; }
  function sec(v) { return v.toFixed(1) + "s"; }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function setValue(id, value, text) {
    var el = document.getElementById(id);
    if (!el) return;
    el.setAttribute("data-value", String(value));
    el.textContent = text;
  }

  function fill(tbody, rows, columns, build) {
    var before = {};
    Array.prototype.forEach.call(tbody.querySelectorAll("tr[data-run]"), function (tr) {
      before[tr.getAttribute("data-run")] = true;
    });
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell(tr, tbody.parentNode.id === "active" ? "none" : "no runs in the audit yet");
      td.colSpan = columns;
      tbody.appendChild(tr);
      return;
    }
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-run", r.run_id);
      if (!before[r.run_id]) tr.className = "new";
      build(tr, r);
      tbody.appendChild(tr);
    });
  }

  function activeRow(tr, e) {
    cell(tr, e.run_id);
    cell(tr, e.workstream_id || "-");
    cell(tr, e.capability || "-");
    cell(tr, e.tool_id || "-");
    cell(tr, e.started_at || "");
  }

  function recentRow(tr, r) {
    var td = cell(tr, "");
    var a = document.createElement("a");
    a.href = "/runs/" + encodeURIComponent(r.run_id);
    a.textContent = r.run_id;
    td.appendChild(a);
    cell(tr, r.started);
    cell(tr, r.workstream_id || "-");
    cell(tr, r.capability || "-");
    var tool = r.final_tool || (r.tools.length ? r.tools[r.tools.length - 1] : "-");
    cell(tr, tool + (r.fell_back ? " (fallback from " + r.first_tool + ")" : ""));
    cell(tr, r.success ? "success" : "failed", r.success ? "met" : "missed");
    cell(tr, sec(r.duration_sec), "num");
    cell(tr, r.feedback || "", "num");
  }

  function apply(data) {
    var active = document.querySelector("#active tbody");
    if (active) fill(active, data.active, 5, activeRow);
    if (generation !== null && data.generation === generation) return;
    generation = data.generation;
    var v = data.report;
    setValue("verdict", v.verdict, v.verdict.toUpperCase());
    var box = document.getElementById("verdict-box");
    if (box) box.className = "verdict verdict-" + v.verdict;
    var reasons = document.getElementById("reasons");
    if (reasons) {
      while (reasons.firstChild) reasons.removeChild(reasons.firstChild);
      v.reasons.forEach(function (text) {
        var li = document.createElement("li");
        li.textContent = text;
        reasons.appendChild(li);
      });
    }
    setValue("success-rate", v.success_rate, pct(v.success_rate));
    setValue("runs-count", v.runs, String(v.runs));
    var recent = document.querySelector("#recent tbody");
    if (recent && page === 1 && data.recent) fill(recent, data.recent, 8, recentRow);
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () {})
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
