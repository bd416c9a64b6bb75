// Browser tests of `esc console` in a real headless Chromium, driven by
// playwright-core. run.sh starts the consoles and passes their addresses:
//   node console.test.js URL DOWN_URL SHOTS_DIR ACTING_URL TOKEN CURE_FILE
// URL serves a schema holding the sample stream order-1 (three events, the
// first with markup in its data); DOWN_URL a console whose PostgreSQL is
// unreachable; ACTING_URL a console started with --allow-actions (TOKEN is
// the token it printed) on a schema where a running worker parked a
// poison event, which it applies once CURE_FILE exists. One screenshot
// per test goes to SHOTS_DIR.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const [url, downUrl, shots, actingUrl, token, cure] = process.argv.slice(2);
const MARKUP = "<img src=x onerror=window.__pwned=1>";

// Polls check(page) until it is true, up to 20 s. Playwright's
// waitForFunction evaluates its predicate as a string inside the page when
// it has to poll, which the console's CSP (no unsafe-eval) refuses.
async function until(page, check, what) {
  const deadline = Date.now() + 20000;
  while (!(await check(page))) {
    assert.ok(Date.now() < deadline, "timed out waiting: " + what);
    await page.waitForTimeout(100);
  }
}

async function overview(page) {
  const r = await page.goto(url + "/");
  const csp = r.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  await page.waitForSelector(".status.ok");
  assert.equal(await page.textContent("#events"), "3");
  assert.equal(await page.textContent("#streams"), "1");
  assert.equal(await page.textContent("#horizon_holder"), "none");
}

async function projectionsHighlighted(page) {
  await page.goto(url + "/");
  await page.waitForSelector("#projections tbody tr");
  const row = await page.$eval("#projections tbody tr", (tr) => ({
    cls: tr.className, cells: [...tr.children].map((td) => td.textContent) }));
  assert.equal(row.cells[0], "orders_view");
  assert.equal(row.cells[8], "1", "one dead letter");
  assert.equal(row.cls, "attention");
  const api = await page.evaluate(async () =>
    (await fetch("/api/projections")).json());
  assert.equal(api.partitions.length, 1);
  assert.equal(api.partitions[0].dead_letters, 1);
}

async function streamDecoded(page) {
  await page.goto(url + "/");
  await page.fill("#stream-id", "order-1");
  await page.click("#stream-open");
  await page.waitForSelector("#events tbody tr");
  const rows = await page.$$eval("#events tbody tr", (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(rows.length, 3);
  assert.deepEqual(rows.map((r) => r[0]), ["1", "2", "3"]);
  assert.equal(rows[1][2], "OrderPaid");
  assert.match(rows[1][6], /"amount": 42/);
  assert.match(rows[1][5], /"correlation_id": "6f1c2d3e-0000-4000-8000-000000000001"/);
}

async function markupIsText(page) {
  await page.goto(url + "/stream.html?id=order-1");
  await page.waitForSelector("#events tbody tr");
  const data = await page.textContent("#events tbody tr td:last-child");
  assert.ok(data.includes(MARKUP), "the markup shows as text: " + data);
  assert.equal(await page.$$eval("#events img", (i) => i.length), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  // The CSP refuses inline script, so an injected one runs nothing.
  await page.addScriptTag({ content: "window.__inline = 1;" }).catch(() => {});
  assert.equal(await page.evaluate(() => window.__inline), undefined);
}

async function actionsRefused(page) {
  await page.goto(url + "/");
  const r = await page.evaluate(async () => {
    const res = await fetch("/api/stats", {
      method: "POST", headers: { Authorization: "Bearer guess" } });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "forbidden");
  await page.waitForSelector(".status.ok");
  assert.equal(await page.textContent("#events"), "3");
}

async function pagedByVersion(page) {
  await page.goto(url + "/stream.html?id=order-1&from=2");
  await page.waitForSelector("#events tbody tr");
  const first = await page.textContent("#events tbody tr td");
  assert.equal(first, "2");
  const api = await page.evaluate(async () =>
    (await fetch("/api/stream?id=order-1&limit=2")).json());
  assert.equal(api.events.length, 2);
  assert.equal(api.next, 3);
  const big = await page.evaluate(async () =>
    (await fetch("/api/stream?id=order-1&limit=101")).status);
  assert.equal(big, 400);
}

async function storeDown(page) {
  await page.goto(downUrl + "/");
  await page.waitForSelector(".status.error");
  const text = await page.textContent("#status");
  assert.match(text, /store unavailable/);
  assert.doesNotMatch(text, /127\.0\.0\.1|postgres(ql)?:\/\//);
  await until(page, async (p) =>
    (await p.textContent("#projections-status")) !== "", "projections status");
  const proj = await page.textContent("#projections-status");
  assert.match(proj, /projections unavailable/);
}

// The rows of the dead-letters table, as their cells' texts.
function letterRows(page) {
  return page.$$eval("#letters tbody tr", (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
}

async function deadLettersReadOnly(page) {
  await page.goto(url + "/");
  await page.click("#dead-letters-link");
  await page.waitForSelector("#letters tbody tr");
  const rows = await letterRows(page);
  assert.equal(rows.length, 1);
  assert.equal(rows[0][2], "orders_view");
  assert.equal(rows[0][5], "order-1@1");
  assert.equal(rows[0][8], "parked");
  assert.equal(rows[0][10], "handler failed");
  assert.equal(await page.isVisible("#read-only"), true);
  assert.equal(await page.isVisible("#actions"), false);
  assert.equal(await page.$$eval("#letters button", (b) => b.length), 0);
  const r = await page.evaluate(async () => {
    const res = await fetch("/api/dead-letters/retry", {
      method: "POST", headers: { Authorization: "Bearer guess" },
      body: JSON.stringify({ all: true }) });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, "forbidden");
  const after = await page.evaluate(async () =>
    (await fetch("/api/dead-letters")).json());
  assert.equal(after.dead_letters[0].state, "parked");
}

// The open letters of the acting console.
function openLetters(page) {
  return page.evaluate(async () =>
    (await (await fetch("/api/dead-letters")).json()).dead_letters);
}

async function retryWithoutToken(page) {
  await page.goto(actingUrl + "/dead-letters.html");
  await page.waitForSelector("#letters tbody tr button");
  assert.equal(await page.isVisible("#actions"), true);
  assert.equal(await page.textContent("#token-state"), "no token");
  await page.click("#letters tbody tr button:text('retry')");
  await page.waitForSelector("#action-status.error");
  assert.match(await page.textContent("#action-status"),
               /retry refused \(401 unauthorized\)/);
  await page.fill("#token", "not-the-token-at-all");
  await page.click("#token-save");
  await page.click("#letters tbody tr button:text('retry')");
  await until(page, async (p) =>
    /403 forbidden/.test(await p.textContent("#action-status")),
    "the wrong token refused");
  const open = await openLetters(page);
  assert.equal(open.length, 1);
  assert.equal(open[0].state, "parked", "a refused retry changes nothing");
}

async function retryWithToken(page) {
  fs.writeFileSync(cure, ""); // the handler stops failing
  await page.goto(actingUrl + "/dead-letters.html");
  await page.waitForSelector("#letters tbody tr button");
  const rows = await letterRows(page);
  assert.equal(rows[0][2], "tally_view");
  assert.equal(rows[0][6], "Counted");
  await page.fill("#token", token);
  await page.click("#token-save");
  assert.equal(await page.textContent("#token-state"),
               "token set for this tab");
  assert.equal(await page.evaluate(() => document.cookie), "");
  await page.click("#letters tbody tr button:text('retry')");
  await page.waitForSelector("#action-status.ok");
  assert.match(await page.textContent("#action-status"), /retry: 1 dead letter/);
  // The worker applies it and resolves the letter: the list empties.
  await until(page, async (p) => (await letterRows(p)).length === 0 &&
    /^0 open/.test(await p.textContent("#status")),
    "the retried letter resolved");
  const p = await page.evaluate(async () =>
    (await (await fetch("/api/projections")).json()).partitions);
  assert.equal(p[0].projection, "tally_view");
  assert.equal(p[0].dead_letters, 0);
}

const tests = { overview, projectionsHighlighted, streamDecoded, markupIsText, actionsRefused,
                pagedByVersion, storeDown, deadLettersReadOnly,
                retryWithoutToken, retryWithToken };

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  let failed = 0;
  for (const [name, run] of Object.entries(tests)) {
    const page = await browser.newPage();
    try {
      await run(page);
      console.log("ok     " + name);
    } catch (e) {
      failed++;
      console.log("FAILED " + name + ": " + e.message);
    }
    await page.screenshot({ path: path.join(shots, name + ".png"),
                            fullPage: true });
    await page.close();
  }
  await browser.close();
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
