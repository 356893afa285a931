/** Sites: the links to remote sites (protocol §13), live, with what the router knows of each one's history. */
import type { SiteEntry } from 'relais/browser';
import type { Session } from '../session.js';
import type { SitesState } from '../model/sites.js';
import { ago, dateTime } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';

/** One row: the live status and roster first (they are newer), the router's answer for the rest. */
function rowsOf(state: SitesState): Array<[string, SiteEntry]> {
  const rows = new Map<string, SiteEntry>(Object.entries(state.answer?.sites ?? {}));
  for (const view of state.live) {
    const known = rows.get(view.site);
    const status = view.status;
    rows.set(view.site, {
      ...known,
      status: status?.status ?? known?.status ?? 'unknown',
      ...(status?.since !== undefined && { since: status.since }),
      ...(status?.mode !== undefined && { mode: status.mode }),
      ...(status?.rttMs !== undefined && { rttMs: status.rttMs }),
      clients: view.roster?.clients ?? known?.clients ?? [],
      ...(view.roster?.refused && { refused: view.roster.refused }),
    });
  }
  return [...rows.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function SitesView({ session }: { session: Session }) {
  const state = useStore(session.sites);
  const now = useNow();
  const rows = rowsOf(state);
  return (
    <section aria-labelledby="sites-title">
      <h1 id="sites-title">Sites</h1>
      {state.answer && <p>This router's site: {state.answer.site}.</p>}
      {state.problem && <p class="problem">{state.problem}</p>}
      <div class="table-wrap">
        <table class="sites">
          <thead>
            <tr>
              {['Site', 'Status', 'Since', 'Mode', 'Round trip', 'Clients', 'Synced to', 'Lag', 'Last sync'].map((label) => <th scope="col">{label}</th>)}
            </tr>
          </thead>
          <tbody>
            {rows.map(([site, entry]) => (
              <tr data-site={site} data-status={entry.status}>
                <th scope="row" data-label="Site">{site}</th>
                <td data-label="Status"><StatusBadge status={entry.status} /></td>
                <td data-label="Since" title={dateTime(entry.since)}>{entry.since === undefined ? '—' : ago(entry.since, now)}</td>
                <td data-label="Mode">{entry.mode ?? '—'}</td>
                <td data-label="Round trip">{entry.rttMs === undefined ? '—' : `${Math.round(entry.rttMs)} ms`}</td>
                <td data-label="Clients" title={entry.clients.join(', ')}>{entry.clients.length}{entry.refused?.length ? ` (${entry.refused.length} refused)` : ''}</td>
                <td data-label="Synced to">{entry.sync ? `${entry.sync.position}${entry.sync.positionCtime === undefined ? '' : ` (${dateTime(entry.sync.positionCtime)})`}` : '—'}</td>
                <td data-label="Lag">{entry.sync?.lag ?? '—'}</td>
                <td data-label="Last sync">
                  {entry.sync?.runningSince !== undefined && `syncing since ${ago(entry.sync.runningSince, now)}; `}
                  {entry.sync?.lastSync ? `${entry.sync.lastSync.outcome}, ${entry.sync.lastSync.rows} rows, ${ago(entry.sync.lastSync.at, now)}` : '—'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && <p>No site is linked to this broker.</p>}
    </section>
  );
}
