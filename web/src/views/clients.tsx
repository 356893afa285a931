/** Clients: every client of the registry, live, with filter and sort. */
import { useState } from 'preact/hooks';
import type { ClientDetail } from '../../../src/protocol/registry.js';
import { CLIENT_STATUSES } from '../../../src/protocol/registry.js';
import type { Session } from '../session.js';
import { ago, dateTime } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';
import { siteOfClient } from '../model/sites.js';

type SortKey = 'id' | 'status' | 'host' | 'connectedSince' | 'lastSeen';
const COLUMNS: [SortKey, string][] = [
  ['id', 'Client'],
  ['status', 'Status'],
  ['host', 'Host'],
  ['connectedSince', 'Connected since'],
  ['lastSeen', 'Last seen'],
];

export function ClientsView({ session }: { session: Session }) {
  const state = useStore(session.clients);
  const sites = useStore(session.sites);
  const now = useNow();
  const [text, setText] = useState('');
  const [status, setStatus] = useState('');
  const [sort, setSort] = useState<{ key: SortKey; up: boolean }>({ key: 'id', up: true });
  const needle = text.trim().toLowerCase();
  const rows = Object.entries(state.clients)
    .filter(([id, client]) => (!status || client.status === status) && (!needle || matches(id, client, needle)))
    .sort(([a, x], [b, y]) => compare(sort.key, a, x, b, y) * (sort.up ? 1 : -1));
  return (
    <section aria-labelledby="clients-title">
      <h1 id="clients-title">Clients</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <div class="filters">
        <label>
          Filter
          <input type="search" placeholder="id, host or action" value={text} onInput={(event) => setText(event.currentTarget.value)} />
        </label>
        <label>
          Status
          <select value={status} onChange={(event) => setStatus(event.currentTarget.value)}>
            <option value="">any</option>
            {CLIENT_STATUSES.map((name) => <option value={name}>{name}</option>)}
          </select>
        </label>
        <span class="count">{rows.length} of {Object.keys(state.clients).length}</span>
      </div>
      <div class="table-wrap">
        <table class="clients">
          <thead>
            <tr>
              {COLUMNS.map(([key, label]) => (
                <th scope="col" aria-sort={sort.key === key ? (sort.up ? 'ascending' : 'descending') : undefined}>
                  <button type="button" class="sort" onClick={() => setSort({ key, up: sort.key === key ? !sort.up : true })}>
                    {label} {sort.key === key ? (sort.up ? '▲' : '▼') : ''}
                  </button>
                </th>
              ))}
              <th scope="col">Site</th>
              <th scope="col">Actions served</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([id, client]) => (
              <tr data-client={id} data-status={client.status}>
                <th scope="row" data-label="Client"><a href={`#/clients/${encodeURIComponent(id)}`}>{id}</a></th>
                <td data-label="Status"><StatusBadge status={client.status} /></td>
                <td data-label="Host">{client.host ?? '—'}{client.pid !== undefined ? ` (pid ${client.pid})` : ''}</td>
                <td data-label="Connected since" title={dateTime(client.connectedSince)}>{client.connectedSince ? ago(client.connectedSince, now) : '—'}</td>
                <td data-label="Last seen" title={dateTime(client.lastSeen)}>{ago(client.lastSeen, now)}</td>
                <td data-label="Site" class="site">{siteOfClient(sites, id) ?? '—'}</td>
                <td data-label="Actions" class="actions-list">{[...client.actions, ...client.realtimeActions].join(', ') || '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {state.loaded && rows.length === 0 && <p>No client matches.</p>}
    </section>
  );
}

function matches(id: string, client: ClientDetail, needle: string): boolean {
  return id.toLowerCase().includes(needle) || (client.host ?? '').toLowerCase().includes(needle) || client.actions.some((action) => action.toLowerCase().includes(needle));
}

function compare(key: SortKey, a: string, x: ClientDetail, b: string, y: ClientDetail): number {
  if (key === 'id') return a.localeCompare(b);
  if (key === 'status' || key === 'host') return (x[key] ?? '').localeCompare(y[key] ?? '') || a.localeCompare(b);
  return (x[key] ?? 0) - (y[key] ?? 0) || a.localeCompare(b);
}
