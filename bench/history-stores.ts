/**
 * History rows/s appended: the SQLite store (one machine) against the PostgreSQL store (routers
 * on several nodes share it, protocol §11 "Several routers on one store"), with one router and
 * with two routers offering the same rows (each stored once), in batches as the recorder makes
 * them. PostgreSQL is a throw-away server (test/testkit/postgres.ts), measured with fsync off
 * (the test kit's setting) and with fsync and synchronous_commit on (a production setting).
 *   node --import tsx bench/history-stores.ts [rows, default 50000]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import type { HistoryRowInput } from '../src/protocol/history.js';
import type { HistoryStore } from '../src/router/history-store.js';
import { openPostgresStores } from '../src/router/postgres-stores.js';
import { SqliteHistoryStore } from '../src/router/sqlite-history-store.js';
import { startPostgres } from '../test/testkit/postgres.js';

const TOTAL = Number(process.argv[2] ?? 50_000);
const BATCHES = [100, 1000];
const logger = pino({ level: 'silent' });
const data = JSON.stringify({ v: 1, payload: { text: 'x'.repeat(60), n: 1 } });
let made = 0;

/** `count` rows, a command then its final per token, as a flood of requests makes them. */
function rows(count: number): HistoryRowInput[] {
  return Array.from({ length: count }, () => {
    made += 1;
    const token = `tok-${Math.floor(made / 2)}`;
    const common = { token, action: 'bench/echo', etime: Date.now(), data, size: data.length, truncated: false };
    return made % 2
      ? { ...common, kind: 'command', source: 'requester-1', target: 'handler-1', digest: `handler-1:${made}` }
      : { ...common, kind: 'final', source: 'handler-1', target: 'requester-1', code: 0, digest: `requester-1:${made}` };
  });
}

/** Each store appends every batch, one at a time as the recorder does: two stores are two routers seeing one bus. */
async function measure(label: string, stores: HistoryStore[], batch: number): Promise<void> {
  const batches = Array.from({ length: TOTAL / batch }, () => rows(batch));
  const start = process.hrtime.bigint();
  let stored = 0;
  await Promise.all(
    stores.map(async (store) => {
      for (const rowsOfBatch of batches) {
        const added = await store.append(rowsOfBatch); // awaited first: `stored += await …` would read `stored` before the wait
        stored += added.length;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${label.padEnd(66)} batch ${String(batch).padStart(4)}: ${Math.round(TOTAL / seconds).toLocaleString('en')} rows/s (${stored} stored)`);
}

console.log(`load average ${os.loadavg().map((load) => load.toFixed(2)).join(' ')}; ${TOTAL} rows per line`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-bench-stores-'));
for (const batch of BATCHES) {
  const sqlite = new SqliteHistoryStore(path.join(dir, `history-${batch}.db`));
  await measure('SQLite (WAL, synchronous=NORMAL)', [sqlite], batch);
  await sqlite.close();
}
const server = await startPostgres();
try {
  for (const durable of [false, true]) {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET fsync = ${durable ? 'on' : 'off'}`);
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
    const setting = durable ? 'fsync on, synchronous_commit on' : 'fsync off (test kit)';
    for (const batch of BATCHES) {
      for (const routers of [1, 2]) {
        const url = await server.createDatabase();
        const opened = await Promise.all(Array.from({ length: routers }, () => openPostgresStores(url, { logger })));
        await measure(`PostgreSQL, ${setting}, ${routers === 1 ? '1 router' : '2 routers (same rows)'}`, opened.map((stores) => stores.historyStore), batch);
        await Promise.all(opened.map((stores) => stores.close()));
      }
    }
  }
} finally {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
