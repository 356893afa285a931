/**
 * The key-value stores against `kvStoreContract()`: memory, a SQLite file (two handles on it for
 * the shared cases, a restart), and a throw-away PostgreSQL server (two pools on one database).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { KvStore } from '../../src/router/kv-store.js';
import { MemoryKvStore } from '../../src/router/memory-kv-store.js';
import { openPostgresStores } from '../../src/router/postgres-stores.js';
import { SqliteKvStore } from '../../src/router/sqlite-kv-store.js';
import { testLogger } from '../testkit/index.js';
import { postgresGate, startPostgres, type TestPostgres } from '../testkit/postgres.js';
import { kvStoreContract } from './kv-store-contract.js';

kvStoreContract('memory', { open: () => new MemoryKvStore() });

const dir = mkdtempSync(join(tmpdir(), 'relais-kv-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const paths = new WeakMap<object, string>();
const openFile = (file: string) => {
  const store = new SqliteKvStore(file);
  paths.set(store, file);
  return store;
};

kvStoreContract('SQLite file, WAL', {
  open: () => openFile(join(dir, `history-${(files += 1)}.db`)),
  reopen: async (store) => {
    await store.close();
    return openFile(paths.get(store)!);
  },
  openSecond: async (first) => openFile(paths.get(first)!),
});

const gate = postgresGate('the PostgreSQL key-value store');
if (gate.run) {
  let server: TestPostgres;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.close();
  });
  const closers = new WeakMap<object, () => Promise<void>>();
  const openPg = async (url: string): Promise<KvStore> => {
    const stores = await openPostgresStores(url, { logger: testLogger, maxConnections: 3 });
    const store = stores.kvStore;
    paths.set(store, url);
    // Closing the store closes its pool.
    const close = () => stores.close();
    closers.set(store, close);
    return Object.assign(Object.create(store) as KvStore, { close });
  };
  kvStoreContract('PostgreSQL', {
    open: async () => openPg(await server.createDatabase()),
    reopen: async (store) => {
      await store.close();
      return openPg(paths.get(Object.getPrototypeOf(store) as object)!);
    },
    openSecond: async (first) => openPg(paths.get(Object.getPrototypeOf(first) as object)!),
  });
}
