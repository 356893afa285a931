import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
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
