/** Events: the router's unified stream (protocol §11.8), live, filtered, pausable, resumed. */
import { useState } from 'preact/hooks';
import { EVENT_TYPES, type BusEvent } from '../../../src/protocol/events.js';
import type { Session } from '../session.js';
import { brief, clock } from '../ui/format.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';

const SHOWN = 500;

export function EventsView({ session }: { session: Session }) {
  const state = useStore(session.events.store);
  const [type, setType] = useState('');
  const [category, setCategory] = useState('');
  const [source, setSource] = useState('');
  const shown = state.events
    .filter((event) => (!type || event.type === type) && (!category || String(event.data.category ?? '').includes(category)) && (!source || sourceOf(event).includes(source)))
    .slice(-SHOWN)
    .reverse();
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
        <button type="button" aria-pressed={state.paused} onClick={() => session.events.setPaused(!state.paused)}>
          {state.paused ? `Resume (${state.waiting.length} waiting)` : 'Pause'}
        </button>
      </div>
      {shown.length === 0 ? <p>No event{type || category || source ? ' matches' : ' yet'}.</p> : <ol class="events" reversed>{shown.map((event) => <EventRow event={event} />)}</ol>}
    </section>
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
      return <span>{d.category} from {d.source}: <code>{event.data.truncated ? `(${d.size} bytes)` : brief(event.data.payload)}</code></span>;
    case 'log':
      return <span>{d.category} {String(d.level).toUpperCase()} from {d.source}: {d.message}</span>;
    default:
      return <code>{brief(event.data)}</code>;
  }
}
