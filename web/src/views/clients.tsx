/** Clients: every client of the registry, live, with filter and sort; the sessions of one identity grouped under it (protocol §2.1). */
import { useState } from 'preact/hooks';
import type { ClientDetail } from '../../../src/protocol/registry.js';
import { CLIENT_STATUSES } from '../../../src/protocol/registry.js';
import type { Session } from '../session.js';
import { ago, dateTime } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';
import { siteOfClient } from '../model/sites.js';
import { parseClientId } from 'relais/browser';

type SortKey = 'id' | 'program' | 'version' | 'status' | 'host' | 'connectedSince' | 'lastSeen';
const COLUMNS: [SortKey, string][] = [
  ['id', 'Client'],
  ['program', 'Program'],
  ['version', 'Version'],
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
  const groups = groupByIdentity(rows);
  return (
    <section aria-labelledby="clients-title">
      <h1 id="clients-title">Clients</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <div class="filters">
        <label>
          Filter
          <input type="search" placeholder="id, name, program, host or action" value={text} onInput={(event) => setText(event.currentTarget.value)} />
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
            {groups.map(({ identity, members, sessions, connected }) => [
              sessions > 0 && !connected && (
                <tr key={`identity ${identity}`} class="identity-group" data-identity={identity}>
                  <th scope="rowgroup" colSpan={COLUMNS.length + 2}>{identity} <span class="hint">{sessions} session{sessions === 1 ? '' : 's'}</span></th>
                </tr>
              ),
              ...members.map(([id, client, session]) => (
              <tr key={id} data-client={id} data-status={client.status} data-identity={identity} class={session === undefined ? undefined : 'session'}>
                <th scope="row" data-label="Client">
                  {session !== undefined && <span class="session-mark" aria-hidden="true">↳ </span>}
                  <a href={`#/clients/${encodeURIComponent(id)}`}>{nameOf(client) ? <><strong>{nameOf(client)}</strong> <span class="hint">{id}</span></> : id}</a>
                  {session === undefined && sessions > 0 && <span class="hint"> +{sessions} session{sessions === 1 ? '' : 's'}</span>}
                </th>
                <td data-label="Program" class="program">{programOf(client) ?? '—'}</td>
                <td data-label="Version" class="version">{client.version ?? '—'}</td>
                <td data-label="Status"><StatusBadge status={client.status} /></td>
                <td data-label="Host">{client.host ?? '—'}{client.pid !== undefined ? ` (pid ${client.pid})` : ''}</td>
                <td data-label="Connected since" title={dateTime(client.connectedSince)}>{client.connectedSince ? ago(client.connectedSince, now) : '—'}</td>
                <td data-label="Last seen" class="last-seen" title={dateTime(lastSeenOf(client, now))}>{lastSeenText(client, now)}</td>
                <td data-label="Site" class="site">{siteOfClient(sites, id) ?? '—'}</td>
                <td data-label="Actions" class="actions-list">{[...client.actions, ...client.realtimeActions].join(', ') || '—'}</td>
              </tr>
              )),
            ])}
          </tbody>
        </table>
      </div>
      {state.loaded && rows.length === 0 && <p>No client matches.</p>}
    </section>
  );
}

interface IdentityGroup {
  identity: string;
  /** Its clients in the order sorted: the identity's own connection first, then its sessions. */
  members: Array<[string, ClientDetail, string | undefined]>;
  sessions: number;
  /** The identity itself is one of the clients shown. */
  connected: boolean;
}

/** Sorted rows grouped by identity, each group where its first row was (the registry's `identity`, else read from the id). */
export function groupByIdentity(rows: ReadonlyArray<[string, ClientDetail]>): IdentityGroup[] {
  const groups = new Map<string, IdentityGroup>();
  for (const [id, client] of rows) {
    const parts = parseClientId(id);
    const identity = client.identity ?? ('problem' in parts ? id : parts.identity);
    const session = client.identity !== undefined ? client.session : 'problem' in parts ? undefined : parts.session;
    let group = groups.get(identity);
    if (!group) groups.set(identity, (group = { identity, members: [], sessions: 0, connected: false }));
    if (session === undefined) {
      group.connected = true;
      group.members.unshift([id, client, undefined]);
    } else {
      group.sessions += 1;
      group.members.push([id, client, session]);
    }
  }
  return [...groups.values()];
}

/** The program a client says it runs (presence info `program`, protocol §7.1: the CLI puts `serve demo/install`, `sub #` there). */
export function programOf(client: ClientDetail): string | undefined {
  const program = client.info.program ?? client.info.app;
  return typeof program === 'string' && program ? program : undefined;
}

/** The friendly name a client may give itself (presence info `name`). */
export function nameOf(client: ClientDetail): string | undefined {
  return typeof client.info.name === 'string' && client.info.name ? client.info.name : undefined;
}

/**
 * A connected client is seen now: the broker holds its connection and would report it dead
 * within the keep-alive window (protocol §1.1); the registry's `lastSeen` only moves on a change.
 */
export function lastSeenOf(client: ClientDetail, now: number): number | undefined {
  return client.status === 'alive' || client.status === 'starting' ? now : client.lastSeen;
}

export function lastSeenText(client: ClientDetail, now: number): string {
  return client.status === 'alive' || client.status === 'starting' ? 'now (connected)' : ago(client.lastSeen, now);
}

function matches(id: string, client: ClientDetail, needle: string): boolean {
  return [id, client.host ?? '', programOf(client) ?? '', nameOf(client) ?? '', ...client.actions].some((text) => text.toLowerCase().includes(needle));
}

function compare(key: SortKey, a: string, x: ClientDetail, b: string, y: ClientDetail): number {
  if (key === 'id') return (nameOf(x) ?? a).localeCompare(nameOf(y) ?? b) || a.localeCompare(b);
  if (key === 'program') return (programOf(x) ?? '').localeCompare(programOf(y) ?? '') || a.localeCompare(b);
  if (key === 'status' || key === 'host' || key === 'version') return (x[key] ?? '').localeCompare(y[key] ?? '') || a.localeCompare(b);
  return (x[key] ?? 0) - (y[key] ?? 0) || a.localeCompare(b);
}
