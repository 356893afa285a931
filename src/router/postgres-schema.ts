/**
 * The tables of the history and the event log in PostgreSQL, shared by every router that uses
 * the database (protocol §11.1, §11.8, §13.5). They mirror the SQLite ones
 * (sqlite-history-store.ts, sqlite-event-log.ts), prefixed `relais_` so that they can live in a
 * database that holds other things. Created if missing, under an advisory lock: two routers
 * starting at once on a new database would otherwise race on the same CREATE.
 */
import type { PostgresDatabase } from './postgres-database.js';

/** The version of the tables this code reads and writes; a database written by a newer one is refused. */
export const SCHEMA_VERSION = 1;

/**
 * Ids and cursors are not sequences: a sequence hands out numbers that commit out of order, so
 * that a reader paging after an id could pass a row still being written. `relais_counters`
 * holds the last id and the last cursor ever given; an append locks its row, numbers its rows
 * and commits, so that appends are serialised and every number is visible once the ones
 * before it are. The last cursor stays when retention removes the newest events.
 */
const TABLES = `
CREATE TABLE IF NOT EXISTS relais_schema (
  name    text    PRIMARY KEY,
  version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS relais_counters (
  name  text   PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO relais_counters (name, value) VALUES ('history', 0), ('events', 0) ON CONFLICT (name) DO NOTHING;
CREATE TABLE IF NOT EXISTS relais_history (
  id        bigint  PRIMARY KEY,
  token     text    NOT NULL,
  kind      text    NOT NULL,
  code      bigint,
  ctime     bigint  NOT NULL,
  etime     bigint  NOT NULL,
  action    text    NOT NULL,
  source    text    NOT NULL,
  target    text,
  progress  double precision,
  priority  text,
  size      bigint  NOT NULL,
  truncated boolean NOT NULL DEFAULT false,
  data      text    NOT NULL,
  digest    text    NOT NULL,
  raw       boolean NOT NULL DEFAULT false,
  via       text,
  site      text,
  sha256    text,
  seal      text
);
-- A binary payload's SHA-256 (protocol §11.1), in tables made before it.
ALTER TABLE relais_history ADD COLUMN IF NOT EXISTS sha256 text;
-- A sealed payload's header seal member (protocol §3.6, §11.1), in tables made before it.
ALTER TABLE relais_history ADD COLUMN IF NOT EXISTS seal text;
-- The same message twice (a QoS 1 redelivery, or two routers recording one bus) is one row.
CREATE UNIQUE INDEX IF NOT EXISTS relais_history_token_digest ON relais_history (token, digest);
CREATE INDEX IF NOT EXISTS relais_history_action ON relais_history (action, id);
CREATE INDEX IF NOT EXISTS relais_history_source ON relais_history (source, id);
CREATE INDEX IF NOT EXISTS relais_history_target ON relais_history (target, id);
-- An identity's rows include its sessions' (<identity>~<session>, protocol §2.1): a prefix range, in "C" order.
CREATE INDEX IF NOT EXISTS relais_history_source_c ON relais_history ((source COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS relais_history_target_c ON relais_history ((target COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS relais_history_ctime ON relais_history (ctime);
-- Partial: the router's own rows (no site) cost this index nothing on insert.
CREATE INDEX IF NOT EXISTS relais_history_site ON relais_history (site, id) WHERE site IS NOT NULL;
-- Where the central stands in each site's history (protocol §13.5), written with each page's rows.
CREATE TABLE IF NOT EXISTS relais_site_sync (
  site           text    PRIMARY KEY,
  position       bigint  NOT NULL,
  position_ctime bigint,
  lag            bigint,
  last_sync_at   bigint,
  last_outcome   text,
  rows           bigint,
  last_ms        bigint,
  last_error     text
);
CREATE TABLE IF NOT EXISTS relais_events (
  cursor bigint PRIMARY KEY,
  time   bigint NOT NULL,
  type   text   NOT NULL,
  data   text   NOT NULL,
  -- What makes an event the same as one another router stored (protocol §11.8); NULL: never a repeat.
  key    text   UNIQUE
);
`;

/** Creates the tables if missing and checks their version; safe to run from several routers at once. */
export async function ensureSchema(database: PostgresDatabase): Promise<void> {
  await database.transaction('creating the Relais tables', async (client) => {
    // Held until the transaction ends: the second router waits, then finds every table made.
    await client.query("SELECT pg_advisory_xact_lock(hashtext('relais_schema'))");
    await client.query(TABLES);
    const { rows } = await client.query<{ version: number }>("SELECT version FROM relais_schema WHERE name = 'relais'");
    const found = rows[0]?.version;
    if (found === undefined) await client.query("INSERT INTO relais_schema (name, version) VALUES ('relais', $1)", [SCHEMA_VERSION]);
    else if (found > SCHEMA_VERSION) throw new Error(`the tables are at version ${found}, written by a newer Relais; this one reads version ${SCHEMA_VERSION}`);
  });
}
