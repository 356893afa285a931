import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteEventLog } from '../../src/router/sqlite-event-log.js';
import { eventLogContract } from './event-log-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-events-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const paths = new WeakMap<object, string>();

eventLogContract('SQLite file, WAL', {
  open(now) {
    files += 1;
    const file = join(dir, `events-${files}.db`);
    const log = new SqliteEventLog(file, { now });
    paths.set(log, file);
    return log;
  },
  async reopen(log, now) {
    await log.close();
    const file = paths.get(log)!;
    const again = new SqliteEventLog(file, { now });
    paths.set(again, file);
    return again;
  },
  openSecond(first, now) {
    const second = new SqliteEventLog(paths.get(first)!, { now });
    paths.set(second, paths.get(first)!);
    return second;
  },
});

it('sqlite - an event log written before event keys opens with the key column, its events kept and cursors going on', async () => {
  const file = join(dir, 'before-key.db');
  const old = new Database(file);
  old.exec('CREATE TABLE events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL)');
  old.prepare("INSERT INTO events (time, type, data) VALUES (1, 'notification', '{\"n\":1}')").run();
  old.close();
  const log = new SqliteEventLog(file, { now: () => 2 });
  try {
    const keyed = { type: 'client' as const, data: { id: 'svc' }, key: 'svc/alive/1' };
    assert.deepEqual(await log.append([keyed, keyed]), [{ cursor: 2, time: 2, type: 'client', data: { id: 'svc' } }]);
    assert.deepEqual(await log.append([keyed]), []);
    assert.deepEqual((await log.page(0, 10)).events.map((stored) => stored.cursor), [1, 2]);
  } finally {
    await log.close();
  }
});
