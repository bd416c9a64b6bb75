// Browser tests of `esc console` in a real headless Chromium, driven by
// playwright-core. run.sh starts the consoles and passes their addresses:
//   node console.test.js URL DOWN_URL SHOTS_DIR
// URL serves a schema holding the sample stream order-1 (three events, the
// first with markup in its data); DOWN_URL a console whose PostgreSQL is
// unreachable. One screenshot per test goes to SHOTS_DIR.
"use strict";

const assert = require("node:assert/strict");
const path = require("node:path");
const { chromium } = require("playwright-core");

const [url, downUrl, shots] = process.argv.slice(2);
const MARKUP = "<img src=x onerror=window.__pwned=1>";

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
  await page.waitForFunction(() =>
    document.getElementById("projections-status").textContent !== "");
  const proj = await page.textContent("#projections-status");
  assert.match(proj, /projections unavailable/);
}

const tests = { overview, projectionsHighlighted, streamDecoded, markupIsText, actionsRefused,
                pagedByVersion, storeDown };

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
