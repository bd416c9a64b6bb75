// esc against its peers on the same PostgreSQL, in the same run: Message
// DB (its SQL functions, through node-postgres) and Emmett (its
// PostgreSQL event store, on Node), each through the client its users
// use, and esc through esc-bench (its C library). Workloads: single-event
// appends by 1 and by 8 writers, each writer on its own streams with an
// expected version; and one category read whole, 1000 events a page.
// Prints one JSON line per workload with esc's ratio to each peer.
// Usage: bench/peers/run (it installs the peers first); see --help there.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import {
  getPostgreSQLEventStore,
  readMessagesBatch,
} from '@event-driven-io/emmett-postgresql';
import { dumbo } from '@event-driven-io/dumbo';

const opt = Object.fromEntries(
  process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')),
);
const seconds = Number(opt.seconds ?? 5);
const events = Number(opt.events ?? 200000);
const log = (...m) => console.error('peers:', ...m);

// About what esc-bench appends: ~100 bytes of data, four metadata keys.
const data = (i) => ({ stream: 'bench', seq: i, sku: 'SKU-000123-BLUE-XL',
  qty: 3, price_cents: 129900, note: 'xxxxxxxxxxxxxxxx' });
const metadata = () => ({ correlation_id: randomUUID(),
  causation_id: randomUUID(), actor: 'bench-writer', time: Date.now() });

// N writers for `seconds`; each `append(writer, i)` appends one event.
async function writers(n, setup, append) {
  const ws = await Promise.all(Array.from({ length: n }, (_, w) => setup(w)));
  const end = Date.now() + seconds * 1000;
  const counts = await Promise.all(ws.map(async (w) => {
    let done = 0;
    while (Date.now() < end) await append(w, done++);
    return done;
  }));
  await Promise.all(ws.map((w) => w.close?.()));
  return counts.reduce((a, b) => a + b, 0) / seconds;
}

// ------------------------------------------------------------ Message DB
const MDB_WRITE = 'SELECT message_store.write_message($1, $2, $3, $4, $5, $6)';

async function mdbClient(url) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("SET search_path = message_store, public");
  return c;
}

// A writer appends to its stream with the version it expects, rolling
// over to a new stream every 100 events (esc-bench's streams are as short).
function mdbAppends(url) {
  return writers(opt.writers, async (w) => {
    const c = await mdbClient(url);
    return { c, stream: null, version: -1, w, close: () => c.end() };
  }, async (s, i) => {
    if (i % 100 === 0) { s.stream = `bench-w${s.w}x${randomUUID()}`; s.version = -1; }
    await s.c.query({ name: 'w', text: MDB_WRITE, values: [randomUUID(),
      s.stream, 'ItemAdded', JSON.stringify(data(i)),
      JSON.stringify(metadata()), s.version < 0 ? null : s.version] });
    s.version++;
  });
}

async function mdbFill(url) {
  const c = await mdbClient(url);
  const have = (await c.query(
    "SELECT count(*)::int AS n FROM messages WHERE category(stream_name) = 'score'")).rows[0].n;
  if (have !== events) {
    log(`message-db: filling ${events} events (untimed)`);
    await c.query("DELETE FROM messages WHERE category(stream_name) = 'score'");
    await c.query(`SELECT write_message(gen_random_uuid()::varchar,
        'score-' || (g / 100), 'ItemScored',
        jsonb_build_object('item', g % 1000, 'points', g % 7), NULL, NULL)
      FROM generate_series(0, $1::int - 1) g`, [events]);
    await c.query('VACUUM ANALYZE messages');
  }
  return c;
}

async function mdbRead(url) {
  const c = await mdbFill(url);
  const t0 = process.hrtime.bigint();
  let pos = 0, n = 0;
  for (;;) {
    const r = await c.query({ name: 'r', text:
      'SELECT * FROM get_category_messages($1, $2, $3)',
      values: ['score', pos, 1000] });
    if (r.rows.length === 0) break;
    n += r.rows.length;
    pos = Number(r.rows[r.rows.length - 1].global_position) + 1;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await c.end();
  if (n !== events) throw new Error(`message-db read ${n} of ${events}`);
  return n / secs;
}

// --------------------------------------------------------------- Emmett
function emmettAppends(url, store) {
  return writers(opt.writers, async (w) => ({ w, stream: null, version: 0n }),
    async (s, i) => {
      if (i % 100 === 0) { s.stream = `bench-w${s.w}x${randomUUID()}`; s.version = null; }
      const r = await store.appendToStream(s.stream,
        [{ type: 'ItemAdded', data: data(i), metadata: metadata() }],
        s.version === null ? {} : { expectedStreamVersion: s.version });
      s.version = r.nextExpectedStreamVersion;
    });
}

async function emmettRead(url, store) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const have = (await c.query("SELECT count(*)::int AS n FROM emt_messages" +
    " WHERE stream_id LIKE 'score-%'")).rows[0].n;
  await c.end();
  const pool = dumbo({ connectionString: url });
  if (have !== events) {
    log(`emmett: filling ${events} events through appendToStream (untimed)`);
    for (let k = 0; k * 100 < events; k++)
      await store.appendToStream(`score-${k}`, Array.from({ length: 100 },
        (_, j) => ({ type: 'ItemScored', data: { item: (k * 100 + j) % 1000 } })));
  }
  const t0 = process.hrtime.bigint();
  let after = -1n, n = 0;
  for (;;) {
    const b = after < 0n
      ? await readMessagesBatch(pool.execute, { from: 0n, batchSize: 1000 })
      : await readMessagesBatch(pool.execute, { after, batchSize: 1000 });
    if (b.messages.length === 0) break;
    n += b.messages.length;
    after = b.currentGlobalPosition;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await pool.close();
  if (n < events) throw new Error(`emmett read ${n} of ${events}`);
  return n / secs;
}

// ------------------------------------------------------------------ esc
function escBench(scenario) {
  const args = ['--seconds', String(seconds), '--rounds', '2',
    '--events', String(events), '--schema', opt.schema ?? 'esc_bench_peers',
    scenario];
  const r = spawnSync(opt['esc-bench'], args, { encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'] });
  const line = JSON.parse(r.stdout.trim().split('\n').pop());
  if (line.error) throw new Error(`esc-bench ${scenario}: ${line.error}`);
  return line;
}

async function main() {
  const mdbUrl = opt['message-db-url'], emmettUrl = opt['emmett-url'];
  const store = getPostgreSQLEventStore(emmettUrl);
  for (const [scenario, w] of [['append-1w', 1], ['append-8w', 8]]) {
    opt.writers = w;
    log(`${scenario}: message-db`);
    const mdb = await mdbAppends(mdbUrl);
    log(`${scenario}: emmett`);
    const emmett = await emmettAppends(emmettUrl, store);
    log(`${scenario}: esc`);
    const esc = escBench(scenario);
    report(scenario, esc, mdb, emmett);
  }
  log('read-category-1000: message-db');
  const mdb = await mdbRead(mdbUrl);
  log('read-category-1000: emmett');
  const emmett = await emmettRead(emmettUrl, store);
  log('read-category-1000: esc');
  report('read-category-1000', escBench('read-category-1000'), mdb, emmett);
  await store.close();
}

function report(scenario, esc, mdb, emmett) {
  const r = (x) => Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({ scenario: `peers-${scenario}`, unit: 'events/s',
    esc: r(esc.value), message_db: r(mdb), emmett: r(emmett),
    ratio_to_message_db: r(esc.value / mdb), ratio_to_emmett: r(esc.value / emmett),
    esc_raw_baseline: r(esc.baseline), esc_ratio_to_raw: esc.ratio,
    seconds, clients: { esc: 'libesc (C)', message_db: 'node-postgres',
      emmett: 'emmett-postgresql on node-postgres' } }));
}

main().catch((e) => { console.error('peers:', e.message); process.exit(1); });
