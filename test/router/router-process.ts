/**
 * A router in its own process, for tests that kill it with SIGKILL: on a broker given by URL,
 * under `id`, its SQLite stores in `database` (which other routers may share); prints
 * `READY <pid>` once it serves.
 *   node --import tsx test/router/router-process.ts <broker-url> <id> <database>
 */
import pino from 'pino';
import { startRouter } from '../../src/router/index.js';

const [broker, id, database] = process.argv.slice(2) as [string, string, string];
const router = await startRouter({ id, broker, database, persistentSession: false, metricsEveryMs: 3_600_000, logger: pino({ level: process.env.RELAIS_TEST_LOG ?? 'silent' }, pino.destination(2)) });
process.stdout.write(`READY ${process.pid}\n`);
process.on('SIGTERM', () => void router.close().finally(() => process.exit(0)));
