// The esc console's overview. Data is only ever written with
// textContent, never as HTML, so stream names, types and database texts
// cannot run anything.
"use strict";

const POLL_MS = 2000;

function setText(id, value) {
  document.getElementById(id).textContent = String(value);
}

function showStatus(text, ok) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "error");
}

function holderText(h) {
  if (h === null) return "none";
  return "pid " + h.pid + ", " + h.age_s.toFixed(1) + " s, " + h.state +
    ", application \u201c" + h.application + "\u201d: " + h.query;
}

function render(stats) {
  setText("schema", "schema " + stats.schema);
  for (const k of ["identity", "events", "streams", "head",
                   "max_global_position"])
    setText(k, stats[k]);
  setText("horizon_holder", holderText(stats.horizon_holder));
  document.getElementById("horizon_holder").className =
    stats.horizon_holder === null ? "" : "held";
}

async function refresh() {
  try {
    const r = await fetch("/api/stats", { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) {
      showStatus("store unavailable: " + body.error.message +
                 " (" + body.error.code + "); retrying", false);
      return;
    }
    render(body);
    showStatus("up to date " + new Date().toISOString(), true);
  } catch (e) {
    showStatus("console unreachable: " + e.message + "; retrying", false);
  }
}

// A partition an operator should look at: stopped, a minute or more
// behind, or with parked events.
const LAGGING_S = 60;

function needsAttention(p) {
  return p.state === "stopped" || p.dead_letters > 0 ||
    p.lag_seconds >= LAGGING_S;
}

function partitionRow(p) {
  const tr = document.createElement("tr");
  cell(tr, p.projection);
  cell(tr, p.partition + "/" + p.partitions);
  cell(tr, p.state);
  cell(tr, p.generation);
  cell(tr, p.checkpoint === null ? "-" : p.checkpoint);
  cell(tr, p.lag_events);
  cell(tr, p.lag_seconds.toFixed(1));
  cell(tr, p.lease === null ? "-" : p.lease.application + " (" +
       p.lease.pid + ")");
  cell(tr, p.dead_letters);
  cell(tr, p.reason === null ? "" : p.reason);
  if (needsAttention(p)) tr.className = "attention";
  return tr;
}

async function refreshProjections() {
  const status = document.getElementById("projections-status");
  const tbody = document.querySelector("#projections tbody");
  try {
    const r = await fetch("/api/projections", { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) {
      status.textContent = "projections unavailable: " +
        body.error.message + " (" + body.error.code + ")";
      return;
    }
    tbody.replaceChildren(...body.partitions.map(partitionRow));
    status.textContent = body.partitions.length === 0
      ? "no projections registered" : "";
  } catch (e) {
    status.textContent = "console unreachable: " + e.message;
  }
}

function startOverview() {
  const open = () => {
    const id = document.getElementById("stream-id").value;
    if (id) location.href = "/stream.html?id=" + encodeURIComponent(id);
  };
  document.getElementById("stream-open").addEventListener("click", open);
  const both = () => { refresh(); refreshProjections(); };
  both();
  setInterval(both, POLL_MS);
}

// ---------------------------------------------------------------- stream --

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function payloadText(e, key) {
  if (e[key + "_error"] !== undefined)
    return "undecodable: " + e[key + "_error"];
  return e[key] === null ? "" : JSON.stringify(e[key], null, 1);
}

function eventRow(e) {
  const tr = document.createElement("tr");
  cell(tr, e.version);
  cell(tr, e.position);
  cell(tr, e.type);
  cell(tr, "v" + e.schema_version);
  cell(tr, e.recorded_at);
  cell(tr, payloadText(e, "metadata"),
       e.metadata_error !== undefined ? "undecodable" : "");
  cell(tr, payloadText(e, "data"),
       e.data_error !== undefined ? "undecodable" : "");
  return tr;
}

async function startStream() {
  const q = new URLSearchParams(location.search);
  const id = q.get("id") || "";
  const from = q.get("from") || "0";
  setText("stream-name", id);
  const api = "/api/stream?id=" + encodeURIComponent(id) + "&from=" +
    encodeURIComponent(from);
  try {
    const r = await fetch(api, { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) {
      showStatus(body.error.message + " (" + body.error.code + ")", false);
      return;
    }
    const tbody = document.querySelector("#events tbody");
    for (const e of body.events) tbody.appendChild(eventRow(e));
    showStatus(body.events.length + " events", true);
    if (body.next !== null) {
      const next = document.getElementById("next");
      next.href = "/stream.html?id=" + encodeURIComponent(id) + "&from=" +
        body.next;
      next.hidden = false;
    }
  } catch (e) {
    showStatus("console unreachable: " + e.message, false);
  }
}

if (document.body.dataset.page === "stream") startStream();
else if (document.body.dataset.page === "overview") startOverview();
