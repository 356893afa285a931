/**
 * A handler process of the soak: serves `soak/work` (works `workMs` in `steps` progress steps,
 * stops when its signal aborts) and `soak/fail` (a module error, code 101). Before it does
 * anything with a command it appends a `run` line to its journal, so executions are counted at
 * the handler, kill -9 or not. Prints READY once serving.
 *   node --import tsx soak/actors/handler.ts (settings in SOAK_ACTOR_SETTINGS)
 */
import type { HandlerContext } from '../../src/index.js';
import { Journal } from '../journal.js';
import type { RunRecord } from '../records.js';
import { actorSettings, connectActor, onStop } from './actor.js';
import { sleep } from '../sleep.js';

interface WorkPayload {
  workMs: number;
  steps: number;
  pad?: string;
}

const settings = actorSettings();
const journal = new Journal(settings.journal);
const bus = await connectActor(settings);

const ran = (ctx: HandlerContext) => journal.write({ run: ctx.token, by: settings.id, requester: ctx.source, action: ctx.action, destination: ctx.envelope.destination, at: Date.now() } satisfies RunRecord);

await bus.handle('soak/work', async (payload: WorkPayload, ctx) => {
  ran(ctx);
  const steps = Math.max(1, Math.min(20, Math.floor(payload?.steps ?? 1)));
  const each = Math.max(0, Number(payload?.workMs ?? 0)) / steps;
  for (let step = 1; step <= steps; step += 1) {
    await sleep(each, ctx.signal);
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (step < steps) ctx.progress(step / steps, { step });
  }
  return { by: settings.id, token: ctx.token, padBytes: payload?.pad?.length ?? 0 };
});

await bus.handle('soak/fail', (_payload: unknown, ctx) => {
  ran(ctx);
  throw Object.assign(new Error('soak/fail fails on purpose'), { code: 101 });
});

onStop(bus, async () => {
  await bus.close();
  journal.close();
});
process.stdout.write(`READY ${settings.id}\n`);
