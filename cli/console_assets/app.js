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

refresh();
setInterval(refresh, POLL_MS);
