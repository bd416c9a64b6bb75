// The console's dead-letters page: the open letters of /api/dead-letters
// and, when /api/console says actions are allowed, retry and discard
// buttons. The token goes in the Authorization header, never a cookie,
// and is kept in sessionStorage (this tab only). Values are written with
// textContent only.
"use strict";

const TOKEN_KEY = "esc-console-token";
const projectionFilter = new URLSearchParams(location.search).get("projection");
let actionsAllowed = false;

function actionStatus(text, ok) {
  const s = document.getElementById("action-status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "error");
}

// POSTs the selection to /api/dead-letters/<verb>; reports the answer.
async function act(verb, selection) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  try {
    const r = await fetch("/api/dead-letters/" + verb, {
      method: "POST", headers, body: JSON.stringify(selection),
      cache: "no-store" });
    const body = await r.json();
    if (r.ok)
      actionStatus(verb + ": " + body.count + " dead letter" +
                   (body.count === 1 ? "" : "s") +
                   (verb === "retry" ? " requested; the worker applies it"
                                      : " discarded"), true);
    else
      actionStatus(verb + " refused (" + r.status + " " + body.error.code +
                   "): " + body.error.message, false);
  } catch (e) {
    actionStatus(verb + " failed: " + e.message, false);
  }
  refreshLetters();
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function letterRow(d) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(d.id);
  const pick = document.createElement("td");
  if (actionsAllowed) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "pick";
    box.value = String(d.id);
    pick.appendChild(box);
  }
  tr.appendChild(pick);
  cell(tr, d.id);
  cell(tr, d.projection);
  cell(tr, d.partition);
  cell(tr, d.position === null ? "-" : d.position);
  cell(tr, d.stream + "@" + d.version);
  cell(tr, d.type);
  cell(tr, d.attempts);
  cell(tr, d.state);
  cell(tr, d.parked_at);
  cell(tr, d.error);
  const buttons = document.createElement("td");
  if (actionsAllowed) {
    buttons.appendChild(button("retry", () => act("retry", { ids: [d.id] })));
    buttons.appendChild(button("discard",
                               () => act("discard", { ids: [d.id] })));
  }
  tr.appendChild(buttons);
  return tr;
}

async function refreshLetters() {
  const api = "/api/dead-letters" + (projectionFilter
    ? "?projection=" + encodeURIComponent(projectionFilter) : "");
  try {
    const r = await fetch(api, { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) {
      showStatus("dead letters unavailable: " + body.error.message + " (" +
                 body.error.code + "); retrying", false);
      return;
    }
    document.querySelector("#letters tbody")
      .replaceChildren(...body.dead_letters.map(letterRow));
    const n = body.dead_letters.length;
    showStatus(n + " open dead letter" + (n === 1 ? "" : "s"), true);
  } catch (e) {
    showStatus("console unreachable: " + e.message + "; retrying", false);
  }
}

function selected() {
  return [...document.querySelectorAll("#letters .pick:checked")]
    .map((b) => Number(b.value));
}

function all() {
  return projectionFilter ? { all: true, projection: projectionFilter }
                          : { all: true };
}

function showTokenState() {
  document.getElementById("token-state").textContent =
    sessionStorage.getItem(TOKEN_KEY) ? "token set for this tab" : "no token";
}

function startActions() {
  document.getElementById("actions").hidden = false;
  document.getElementById("token-save").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("token").value = "";
    showTokenState();
  });
  showTokenState();
  const on = (id, f) => document.getElementById(id).addEventListener("click", f);
  on("retry-selected", () => act("retry", { ids: selected() }));
  on("discard-selected", () => act("discard", { ids: selected() }));
  on("retry-all", () => act("retry", all()));
  on("discard-all", () => act("discard", all()));
}

async function startDeadLetters() {
  try {
    const r = await fetch("/api/console", { cache: "no-store" });
    actionsAllowed = r.ok && (await r.json()).actions === true;
  } catch (e) {
    actionsAllowed = false;
  }
  if (actionsAllowed) startActions();
  else document.getElementById("read-only").hidden = false;
  refreshLetters();
  setInterval(refreshLetters, POLL_MS);
}

if (document.body.dataset.page === "dead-letters") startDeadLetters();
