/**
 * One client: its logs first (asked of it on opening, protocol §11.4, each line with its fields:
 * the error's text, not only "handler failed"), its registry detail with a button per action
 * that opens the console on it, its contracts (§7.6), and its events, paged.
 */
import { useEffect, useState } from 'preact/hooks';
import type { BusEvent } from '../../../src/protocol/events.js';
import { LOG_LINE_LEVEL_NAMES, LOGS_ACTION, type LogsAnswer } from '../../../src/protocol/logs.js';
import { CONTRACTS_ACTION, type ContractsAnswer } from 'relais/browser';
import { QUERY_TIMEOUT_MS } from '../model/query.js';
import type { Session } from '../session.js';
import { ago, brief, clock, dateTime, pretty } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { StatusBadge } from '../ui/status.js';
import { useStore } from '../ui/store.js';
import { lastSeenText, nameOf, programOf } from './clients.js';
import { PagedEvents } from './events.js';

/** A log line's fields every line has, shown in its own columns rather than repeated as `key=value`. */
const LINE_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

export function ClientPage({ session, id }: { session: Session; id: string }) {
  const { clients } = useStore(session.clients);
  const { events } = useStore(session.events.store);
  const now = useNow();
  const client = clients[id];
  const mine = events.filter((event) => concerns(event, id));
  const alive = client?.status === 'alive' || client?.status === 'starting';
  return (
    <section aria-labelledby="client-title">
      <p><a href="#/clients">← All clients</a></p>
      <h1 id="client-title">{client && nameOf(client) ? `${nameOf(client)} (${id})` : id} {client && <StatusBadge status={client.status} />}</h1>
      {client && (
        <p class="actions-row">
          {[...client.actions, ...client.realtimeActions].map((action) => (
            <a class="button" href={`#/console?action=${encodeURIComponent(action)}&target=${encodeURIComponent(id)}`}>Call {action}</a>
          ))}
        </p>
      )}
      <Logs session={session} id={id} alive={alive} />
      {!client ? (
        <p>The registry does not know this client (or has forgotten it).</p>
      ) : (
        <>
          <h2>Details</h2>
          <dl class="details">
            {programOf(client) && (<><dt>Program</dt><dd>{programOf(client)}</dd></>)}
            <dt>Host</dt><dd>{client.host ?? '—'}{client.pid !== undefined ? ` (pid ${client.pid})` : ''}</dd>
            {client.version && (<><dt>Version</dt><dd>{client.version}</dd></>)}
            <dt>Connected since</dt><dd>{dateTime(client.connectedSince)}</dd>
            <dt>Last seen</dt><dd>{lastSeenText(client, now)}{!alive && client.lastSeen ? ` (${dateTime(client.lastSeen)})` : ''}</dd>
            <dt>Instance started</dt><dd>{dateTime(client.since)}{client.instance ? ` (instance ${client.instance})` : ''}</dd>
            <dt>Actions</dt><dd>{client.actions.length ? client.actions.join(', ') : '—'}</dd>
            {client.realtimeActions.length > 0 && (<><dt>Real-time actions</dt><dd>{client.realtimeActions.join(', ')}</dd></>)}
            {client.reason && (<><dt>Why unknown</dt><dd>{client.reason}</dd></>)}
            {Object.keys(client.info).length > 0 && (<><dt>Info</dt><dd><code>{brief(client.info, 2000)}</code></dd></>)}
          </dl>
          {client.info.contracts !== undefined && <Contracts session={session} id={id} alive={alive} />}
        </>
      )}
      <h2>Events</h2>
      <PagedEvents events={mine} empty="None since this page opened." />
    </section>
  );
}

function concerns(event: BusEvent, id: string): boolean {
  const data = event.data;
  return data.id === id || data.source === id || data.handler === id || data.requester === id || data.target === id;
}

function Logs({ session, id, alive }: { session: Session; id: string; alive: boolean }) {
  const [level, setLevel] = useState('info');
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
  // Logs first: asked once on opening, when the client is there to answer.
  useEffect(() => void (alive && fetchLogs()), [id, alive]);
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
          <pre class="logs">{answer.lines.slice().reverse().map((line) => <div class={`log-line level-${levelName(line.level).trim().toLowerCase()}`}>{logLine(line)}</div>)}</pre>
        </>
      )}
    </section>
  );
}

/** `time LEVEL msg key=value…`: the fields after the message say what failed (`err`, `action`, `token`). */
function logLine(line: Record<string, unknown>): string {
  const fields = Object.entries(line)
    .filter(([key]) => !LINE_FIELDS.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? (/\s/.test(value) ? JSON.stringify(value) : value) : brief(value, 500)}`);
  return `${clock(line.time as number)} ${levelName(line.level)} ${String(line.msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

function levelName(level: unknown): string {
  const names: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
  return names[level as number] ?? String(level);
}

function Contracts({ session, id, alive }: { session: Session; id: string; alive: boolean }) {
  const [state, setState] = useState<{ answer?: ContractsAnswer; problem?: string }>({});
  useEffect(() => {
    if (!alive) return;
    let current = true;
    session.bus.request<ContractsAnswer>(CONTRACTS_ACTION, {}, { target: id, timeout: QUERY_TIMEOUT_MS }).then(
      (answer) => current && setState({ answer }),
      (error: Error) => current && setState({ problem: error.message }),
    );
    return () => void (current = false);
  }, [id, alive]);
  return (
    <section aria-labelledby="contracts-title">
      <h2 id="contracts-title">Contracts</h2>
      {state.problem && <p class="problem">{state.problem}</p>}
      {!alive && <p>The client is not connected: its contracts cannot be asked.</p>}
      {Object.entries(state.answer?.actions ?? {}).map(([action, contract]) => (
        <details class="contract" data-action={action}>
          <summary>{action}{contract.description ? `: ${contract.description}` : ''}</summary>
          <pre>{pretty({ input: contract.input, output: contract.output })}</pre>
        </details>
      ))}
    </section>
  );
}
