/** One client: its registry detail, its recent events, and its logs on demand (protocol §11.4). */
import { useState } from 'preact/hooks';
import type { BusEvent } from '../../../src/protocol/events.js';
import { LOG_LINE_LEVEL_NAMES, LOGS_ACTION, type LogsAnswer } from '../../../src/protocol/logs.js';
import { QUERY_TIMEOUT_MS } from '../model/query.js';
import type { Session } from '../session.js';
import { ago, brief, clock, dateTime } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';
import { EventRow } from './events.js';

export function ClientPage({ session, id }: { session: Session; id: string }) {
  const { clients } = useStore(session.clients);
  const { events } = useStore(session.events.store);
  const now = useNow();
  const client = clients[id];
  const mine = events.filter((event) => concerns(event, id)).slice(-50).reverse();
  return (
    <section aria-labelledby="client-title">
      <p><a href="#/clients">← All clients</a></p>
      <h1 id="client-title">{id} {client && <StatusBadge status={client.status} />}</h1>
      {!client ? (
        <p>The registry does not know this client (or has forgotten it).</p>
      ) : (
        <dl class="details">
          <dt>Host</dt><dd>{client.host ?? '—'}{client.pid !== undefined ? ` (pid ${client.pid})` : ''}</dd>
          {client.version && (<><dt>Version</dt><dd>{client.version}</dd></>)}
          <dt>Connected since</dt><dd>{dateTime(client.connectedSince)}</dd>
          <dt>Last seen</dt><dd>{dateTime(client.lastSeen)} ({ago(client.lastSeen, now)})</dd>
          <dt>Instance started</dt><dd>{dateTime(client.since)}{client.instance ? ` (instance ${client.instance})` : ''}</dd>
          <dt>Actions</dt><dd>{client.actions.length ? client.actions.map((action) => <a class="chip" href={`#/console?action=${encodeURIComponent(action)}&target=${encodeURIComponent(id)}`}>{action}</a>) : '—'}</dd>
          {client.realtimeActions.length > 0 && (<><dt>Real-time actions</dt><dd>{client.realtimeActions.join(', ')}</dd></>)}
          {client.reason && (<><dt>Why unknown</dt><dd>{client.reason}</dd></>)}
          {Object.keys(client.info).length > 0 && (<><dt>Info</dt><dd><code>{brief(client.info, 2000)}</code></dd></>)}
        </dl>
      )}
      <h2>Recent events</h2>
      {mine.length === 0 ? <p>None since this page opened.</p> : (
        <ol class="events" reversed>{mine.map((event) => <EventRow event={event} />)}</ol>
      )}
      <Logs session={session} id={id} alive={client?.status === 'alive' || client?.status === 'starting'} />
    </section>
  );
}

function concerns(event: BusEvent, id: string): boolean {
  const data = event.data;
  return data.id === id || data.source === id || data.handler === id || data.requester === id || data.target === id;
}

function Logs({ session, id, alive }: { session: Session; id: string; alive: boolean }) {
  const [level, setLevel] = useState('');
  const [lines, setLines] = useState(100);
  const [answer, setAnswer] = useState<LogsAnswer | undefined>();
  const [state, setState] = useState<{ busy: boolean; problem?: string }>({ busy: false });
  const fetchLogs = async () => {
    setState({ busy: true });
    try {
      const payload = { lines, ...(level && { level }) };
      setAnswer(await session.bus.request<LogsAnswer>(LOGS_ACTION, payload, { target: id, timeout: QUERY_TIMEOUT_MS }));
      setState({ busy: false });
    } catch (error) {
      setState({ busy: false, problem: (error as Error).message });
    }
  };
  return (
    <section aria-labelledby="logs-title">
      <h2 id="logs-title">Logs</h2>
      <form class="filters" onSubmit={(event) => (event.preventDefault(), void fetchLogs())}>
        <label>
          Level
          <select value={level} onChange={(event) => setLevel(event.currentTarget.value)}>
            <option value="">every kept line</option>
            {LOG_LINE_LEVEL_NAMES.map((name) => <option value={name}>{name} and above</option>)}
          </select>
        </label>
        <label>
          Lines
          <input type="number" min={1} max={10000} value={lines} onInput={(event) => setLines(Number(event.currentTarget.value) || 100)} />
        </label>
        <button type="submit" disabled={state.busy || !alive}>{state.busy ? 'Fetching…' : 'Fetch logs'}</button>
        {!alive && <span>(the client is not connected)</span>}
      </form>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      {answer && (
        <>
          <p>{answer.lines.length} lines{answer.truncated ? ' (older ones left out: too large)' : ''}; the client keeps lines from level {answer.kept.level}.</p>
          <pre class="logs">{answer.lines.map((line) => `${clock(line.time as number)} ${levelName(line.level)} ${String(line.msg ?? '')}\n`).join('')}</pre>
        </>
      )}
    </section>
  );
}

function levelName(level: unknown): string {
  const names: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
  return names[level as number] ?? String(level);
}
