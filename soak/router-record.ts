/**
 * What the router kept, read back the way any client reads it, as `admin` (which holds
 * `history:read-all`): every history row with `relais/history/get`, page after page by `afterId`,
 * and every event with `relais/events/get` from cursor 0.
 */
import { PayloadTooLargeError, type Bus, type BusEvent, type EventsPage } from '../src/index.js';
import type { HistoryRow } from '../src/protocol/history.js';

const HISTORY_PAGE = 1000;
const EVENTS_PAGE = 5000;

export async function readWholeHistory(bus: Bus): Promise<HistoryRow[]> {
  const rows: HistoryRow[] = [];
  let limit = HISTORY_PAGE;
  for (let afterId = 0, more = true; more; ) {
    let page: { rows: HistoryRow[]; more: boolean };
    try {
      page = (await bus.request('relais/history/get', { afterId, limit, order: 'oldest' })) as typeof page;
    } catch (error) {
      // The router does not shorten a page to fit the message size limit (rows keep up to 8 KiB of data each): ask for fewer.
      if (!(error instanceof PayloadTooLargeError) || limit === 1) throw error;
      limit = Math.max(1, Math.floor(limit / 2));
      continue;
    }
    rows.push(...page.rows);
    more = page.more && page.rows.length > 0;
    afterId = page.rows.at(-1)?.id ?? afterId;
  }
  return rows;
}

export async function readAllEvents(bus: Bus): Promise<{ events: BusEvent[]; latest: number; missed: number }> {
  const events: BusEvent[] = [];
  let latest = 0;
  let missed = 0;
  for (let since = 0, more = true; more; ) {
    const page = (await bus.request('relais/events/get', { since, limit: EVENTS_PAGE })) as EventsPage;
    events.push(...page.events);
    missed += page.missed ?? 0;
    latest = page.latest;
    more = page.more && page.events.length > 0;
    since = page.events.at(-1)?.cursor ?? since;
  }
  return { events, latest, missed };
}
