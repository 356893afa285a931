import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteHistoryStore } from '../../src/router/sqlite-history-store.js';
import { historyStoreContract } from './history-store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'relais-history-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const paths = new WeakMap<object, string>();

historyStoreContract('SQLite file, WAL', {
  open(now) {
    files += 1;
    const file = join(dir, `history-${files}.db`);
    const store = new SqliteHistoryStore(file, { now });
    paths.set(store, file);
    return store;
  },
  reopen(store, now) {
    store.close();
    const file = paths.get(store)!;
    const again = new SqliteHistoryStore(file, { now });
    paths.set(again, file);
    return again;
  },
});
