/**
 * A library handler with a contract (protocol §7.6), in its own process, for the console's
 * payload check: serves `demo/resize` taking `{width: integer >= 1, height?: integer}`.
 * Prints `READY` once serving.
 *   node --import tsx test/web-page/contract-handler.ts <broker-url> <id> [<presence info as JSON>]   (RELAIS_TOKEN for a secure broker)
 */
import pino from 'pino';
import { z } from 'zod';
import { connect } from '../../src/index.js';

const [broker, id, info] = process.argv.slice(2) as [string, string, string | undefined];
const bus = await connect({
  id,
  broker,
  ...(process.env.RELAIS_TOKEN && { username: id, password: process.env.RELAIS_TOKEN }),
  logger: pino({ level: 'silent' }),
  ...(info && { info: JSON.parse(info) as Record<string, unknown> }),
});
await bus.handle('demo/resize', (size: { width: number; height?: number }) => ({ resized: size }), {
  input: z.object({ width: z.number().int().min(1), height: z.number().int().optional() }),
  output: z.object({ resized: z.object({ width: z.number(), height: z.number().optional() }) }),
  description: 'resizes nothing: a contract for the page tests',
});
process.stdout.write('READY\n');
process.on('SIGTERM', () => void bus.close().finally(() => process.exit(0)));
