/** Events: the router's unified stream (protocol §11.8), live, filtered, pausable, resumed. */
import { useState } from 'preact/hooks';
import { EVENT_TYPES, type BusEvent } from '../../../src/protocol/events.js';
import type { Session } from '../session.js';
import { brief, clock, SealedPreview, sealedText } from '../ui/format.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';

/** Events per page of the list. */
export const PAGE_SIZE = 50;

export function EventsView({ session }: { session: Session }) {
  const state = useStore(session.events.store);
  const [type, setType] = useState('');
  const [category, setCategory] = useState('');
  const [source, setSource] = useState('');
  const [internal, setInternal] = useState(false);
  const noise = internal ? undefined : noiseOf(state.events);
  const matching = state.events.filter((event) => (!type || event.type === type) && (!category || String(event.data.category ?? '').includes(category)) && (!source || sourceOf(event).includes(source)));
  const shown = noise ? matching.filter((event) => !noise.has(event.cursor)) : matching;
  const hidden = matching.length - shown.length;
  return (
    <section aria-labelledby="events-title">
      <h1 id="events-title">Events</h1>
      <div class="notices" role="status" aria-live="polite">
        {state.notices.map((notice) => <p class={`notice notice-${notice.kind}`} data-notice={notice.kind}>{notice.text}</p>)}
      </div>
      <div class="filters">
        <label>
          Type
          <select value={type} onChange={(event) => setType(event.currentTarget.value)}>
            <option value="">any</option>
            {EVENT_TYPES.map((name) => <option value={name}>{name}</option>)}
          </select>
        </label>
        <label>
          Category
          <input type="search" value={category} onInput={(event) => setCategory(event.currentTarget.value)} placeholder="e.g. system/disks" />
        </label>
        <label>
          Source
          <input type="search" value={source} onInput={(event) => setSource(event.currentTarget.value)} placeholder="client id" />
        </label>
        <label class="inline" title="the router's own notifications (relais/…: metrics every 10 s) and short-lived clients that came and went (a CLI command's alive and forgotten)">
          <input type="checkbox" role="switch" name="internal" checked={internal} onChange={(event) => setInternal(event.currentTarget.checked)} /> Show internal
        </label>
        <button type="button" aria-pressed={state.paused} onClick={() => session.events.setPaused(!state.paused)}>
          {state.paused ? `Resume (${state.waiting.length} waiting)` : 'Pause'}
        </button>
      </div>
      {hidden > 0 && <p class="hint" data-testid="hidden-count">{hidden} internal event{hidden === 1 ? '' : 's'} hidden (metrics, relais/ notifications, short-lived clients that came and went): “Show internal” shows them.</p>}
      {/* Keyed by the filters: another filter is another list, shown from its newest page. */}
      <PagedEvents key={`${type}|${category}|${source}|${internal}`} events={shown} empty={`No event${type || category || source ? ' matches' : ' yet'}.`} />
    </section>
  );
}

/**
 * The events a user does not look for by default (protocol §11.8): the router's own
 * notifications and logs (category `relais/…`, its metrics every 10 s), and the `client` events
 * of a short-lived client that has come and gone (an ephemeral client, a CLI command: its
 * alive and its forgotten).
 */
export function noiseOf(events: BusEvent[]): Set<number> {
  const forgotten = new Set(events.filter((event) => event.type === 'client' && event.data.status === 'forgotten').map((event) => String(event.data.id)));
  const noise = new Set<number>();
  for (const event of events) {
    if ((event.type === 'notification' || event.type === 'log') && String(event.data.category ?? '').startsWith('relais/')) noise.add(event.cursor);
    else if (event.type === 'client' && forgotten.has(String(event.data.id))) noise.add(event.cursor);
  }
  return noise;
}

/** Newest first, a page at a time (page 1 the newest). */
export function PagedEvents({ events, empty }: { events: BusEvent[]; empty: string }) {
  const [page, setPage] = useState(0);
  const pages = Math.max(1, Math.ceil(events.length / PAGE_SIZE));
  const current = Math.min(page, pages - 1);
  const newestFirst = events.slice().reverse();
  const shown = newestFirst.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);
  if (events.length === 0) return <p>{empty}</p>;
  return (
    <>
      <ol class="events" reversed start={events.length - current * PAGE_SIZE}>{shown.map((event) => <EventRow event={event} />)}</ol>
      {pages > 1 && (
        <nav class="pager" aria-label="event pages">
          <button type="button" onClick={() => setPage(current - 1)} disabled={current === 0}>Newer</button>
          <span>Page {current + 1} of {pages} ({events.length} events)</span>
          <button type="button" onClick={() => setPage(current + 1)} disabled={current >= pages - 1}>Older</button>
        </nav>
      )}
    </>
  );
}

/** Who an event is about, for the source filter. */
function sourceOf(event: BusEvent): string {
  const data = event.data;
  return [data.source, data.id, data.handler, data.requester].filter((value) => typeof value === 'string').join(' ');
}

export function EventRow({ event }: { event: BusEvent }) {
  return (
    <li class={`event event-${event.type.replace('.', '-')}`} data-cursor={event.cursor} data-type={event.type}>
      <span class="cursor">#{event.cursor}</span> <time>{clock(event.time)}</time> <span class="type">{event.type}</span> <EventText event={event} />
    </li>
  );
}

/** A notification event's payload (protocol §11.8): sealed (whom for, its size), binary (its size), cut (its size), or the payload. */
function notificationText(data: Record<string, unknown>): string {
  const size = Number(data.size);
  if (data.sealed === true) return sealedText(new SealedPreview(Array.isArray(data.kids) ? data.kids.map(String) : [], size));
  if (data.binary === true || data.truncated === true) return `(${size} bytes)`;
  return brief(data.payload);
}

function EventText({ event }: { event: BusEvent }) {
  const d = event.data as Record<string, string | number | undefined>;
  const token = d.token !== undefined && <a href={`#/history/${encodeURIComponent(String(d.token))}`}>{String(d.token)}</a>;
  switch (event.type) {
    case 'client':
      return <span><a href={`#/clients/${encodeURIComponent(String(d.id))}`}>{d.id}</a> <StatusBadge status={String(d.status)} /> {d.host ? `on ${d.host}` : ''}</span>;
    case 'request.started':
      return <span>{d.action} by {d.source}{d.target ? ` to ${d.target}` : ''} ({token})</span>;
    case 'request.finished':
      return <span>{d.action} {d.code === 0 ? 'done' : `failed, code ${d.code}`} by {d.handler ?? '?'} for {d.requester} in {d.durationMs ?? '?'} ms ({token})</span>;
    case 'notification':
      return <span>{d.category} from {d.source}: <code>{notificationText(event.data)}</code></span>;
    case 'log':
      return <span>{d.category} {String(d.level).toUpperCase()} from {d.source}: {d.message}</span>;
    default:
      return <code>{brief(event.data)}</code>;
  }
}
