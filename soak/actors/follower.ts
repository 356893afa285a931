/**
 * The event follower of the soak: `bus.events({ since: 0 })`, the library's resuming feed
 * (protocol §11.8), journaling each event's cursor and each gap it reports, across every drop of
 * its connection and every restart of the router; and a subscriber to the requesters'
 * notifications, journaling each one it sees. `stop` on stdin ends the feed.
 *   node --import tsx soak/actors/follower.ts (settings in SOAK_ACTOR_SETTINGS)
 */
import { Journal } from '../journal.js';
import type { DoneRecord, EventRecord, GapRecord, NoteSeenRecord } from '../records.js';
import { actorSettings, connectActor, onStop } from './actor.js';
import { sleep } from '../sleep.js';

const settings = actorSettings();
const journal = new Journal(settings.journal);
const bus = await connectActor(settings);
const stopping = new AbortController();
let lastCursor = 0;

await bus.subscribe('soak/notes/notification', (message) => {
  const payload = message.envelope.payload as { from?: unknown; seq?: unknown } | null;
  if (typeof payload?.from === 'string' && typeof payload.seq === 'number') journal.write({ noteFrom: payload.from, seq: payload.seq, at: Date.now() } satisfies NoteSeenRecord);
});

const following = (async () => {
  for await (const item of bus.events({ since: 0, signal: stopping.signal })) {
    if (item.type === 'gap' && 'missed' in item) journal.write({ gap: item.missed, after: item.after, at: Date.now() } satisfies GapRecord);
    else if ('cursor' in item) {
      journal.write({ cursor: item.cursor, type: item.type, at: Date.now() } satisfies EventRecord);
      lastCursor = item.cursor;
    }
  }
})();

onStop(bus, async () => {
  // Catch up with what the router has stored first: the checks compare the two.
  let caughtUpTo: number | undefined;
  try {
    caughtUpTo = ((await bus.request('relais/events/get', { limit: 1 }, { timeout: 10_000 })) as { latest: number }).latest;
    for (const giveUp = Date.now() + 30_000; lastCursor < caughtUpTo && Date.now() < giveUp; ) await sleep(200);
  } catch (error) {
    process.stderr.write(`could not catch up with the router: ${(error as Error).message}\n`);
  }
  stopping.abort();
  await following;
  journal.write({ done: true, pending: 0, ...(caughtUpTo !== undefined && { caughtUpTo }), at: Date.now() } satisfies DoneRecord);
  await bus.close();
  journal.close();
});
process.stdout.write(`READY ${settings.id}\n`);
