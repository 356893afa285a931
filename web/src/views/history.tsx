/** History: search the router's rows (protocol §11.2) and open one token as a timeline. */
import { useEffect, useState } from 'preact/hooks';
import { HISTORY_ACTIONS, HISTORY_KINDS, type HistoryPage, type HistoryQuery, type HistoryRow } from '../../../src/protocol/history.js';
import { QUERY_TIMEOUT_MS } from '../model/query.js';
import type { Session } from '../session.js';
import { brief, dateTime, duration, SealedPreview, sealedText, storedBytesPreview } from '../ui/format.js';
import { sealedFor } from '../../../src/protocol/sealing.js';
import { CodeBadge } from '../ui/status.js';

export function HistoryView({ session, token }: { session: Session; token: string | undefined }) {
  return token ? <Timeline session={session} token={token} /> : <Search session={session} />;
}

interface Found {
  token: string;
  action: string;
  first: number;
  last: number;
  command?: HistoryRow;
  end?: HistoryRow;
  accepted?: HistoryRow;
  cancel?: HistoryRow;
  kill?: HistoryRow;
  /** Rows seen of it (the page's search may hold only some). */
  rows: number;
}

function Search({ session }: { session: Session }) {
  const [form, setForm] = useState({ action: '', source: '', code: '', kind: '', from: '', to: '' });
  const [result, setResult] = useState<{ found?: Found[]; more?: boolean; problem?: string; busy?: boolean }>({});
  const search = async () => {
    const query: HistoryQuery = { order: 'newest', limit: 500 };
    if (form.action.trim()) query.action = form.action.trim();
    if (form.source.trim()) query.source = form.source.trim();
    if (form.code.trim()) query.code = Number(form.code);
    if (form.kind) query.kind = form.kind as HistoryRow['kind'];
    if (form.from) query.etimeFrom = new Date(form.from).getTime();
    if (form.to) query.etimeTo = new Date(form.to).getTime();
    setResult({ busy: true });
    try {
      // A client is in a request's rows as the sender (its commands, or its answers as handler)
      // or as the target (the answers it got, the commands sent to it): both, for whole rows.
      const queries = query.source ? [query, { ...query, source: undefined, target: query.source }] : [query];
      const pages = await Promise.all(queries.map((asked) => session.bus.request<HistoryPage>(HISTORY_ACTIONS.get, JSON.parse(JSON.stringify(asked)) as HistoryQuery, { timeout: QUERY_TIMEOUT_MS })));
      const rows = new Map(pages.flatMap((page) => page.rows).map((row) => [row.id, row]));
      setResult({ found: byToken([...rows.values()]), more: pages.some((page) => page.more) });
    } catch (error) {
      setResult({ problem: (error as Error).message });
    }
  };
  useEffect(() => void search(), []);
  const field = (name: keyof typeof form, label: string, type: 'text' | 'number' | 'datetime-local' = 'text') => (
    <label>
      {label}
      <input name={name} type={type as "text"} value={form[name]} onInput={(event) => setForm({ ...form, [name]: event.currentTarget.value })} />
    </label>
  );
  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <form class="filters" onSubmit={(event) => (event.preventDefault(), void search())}>
        {field('action', 'Action')}
        {field('source', 'Source')}
        {field('code', 'Code', 'number')}
        <label>
          Step
          <select value={form.kind} onChange={(event) => setForm({ ...form, kind: event.currentTarget.value })}>
            <option value="">any</option>
            {HISTORY_KINDS.map((kind) => <option value={kind}>{kind}</option>)}
          </select>
        </label>
        {field('from', 'From', 'datetime-local')}
        {field('to', 'To', 'datetime-local')}
        <button type="submit" disabled={result.busy}>Search</button>
      </form>
      {result.problem && <p role="alert" class="problem">{result.problem}</p>}
      {result.found && (
        <div class="table-wrap">
          <table class="history">
            <thead><tr>{['Started', 'Action', 'Requester', 'Handler', 'Outcome', 'Duration', 'Token'].map((label) => <th scope="col">{label}</th>)}</tr></thead>
            <tbody>
              {result.found.map((found) => {
                const outcome = outcomeOf(found);
                return (
                  <tr data-token={found.token} data-outcome={outcome.kind}>
                    <td data-label="Started">{dateTime(found.first)}</td>
                    <td data-label="Action">{found.action}</td>
                    <td data-label="Requester" class="requester">{requesterOf(found) ?? '—'}</td>
                    <td data-label="Handler" class="handler">{handlerOf(found) ?? '—'}</td>
                    <td data-label="Outcome" class={`outcome outcome-${outcome.kind}`}>{outcome.text}</td>
                    <td data-label="Duration" class="duration">{found.command && found.end ? duration(found.end.etime - found.command.etime) : '—'}</td>
                    <th scope="row" data-label="Token"><a href={`#/history/${encodeURIComponent(found.token)}`}>{found.token}</a></th>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {result.found?.length === 0 && <p>No request matches.</p>}
      {result.more && <p>More rows match: narrow the search.</p>}
    </section>
  );
}

function byToken(rows: HistoryRow[]): Found[] {
  const found = new Map<string, Found>();
  for (const row of rows) {
    let entry = found.get(row.token);
    if (!entry) found.set(row.token, (entry = { token: row.token, action: row.action, first: row.etime, last: row.etime, rows: 0 }));
    entry.rows++;
    entry.first = Math.min(entry.first, row.etime);
    entry.last = Math.max(entry.last, row.etime);
    if (row.kind === 'command') entry.command ??= row;
    else if (row.kind === 'accepted') entry.accepted ??= row;
    else if (row.kind === 'cancel') entry.cancel ??= row;
    else if (row.kind === 'kill') entry.kill = row;
    else if (row.kind === 'final' || row.kind === 'error' || row.kind === 'put') entry.end ??= row;
  }
  return [...found.values()].sort((a, b) => b.first - a.first);
}

/** Who asked: the command's sender; without its row, whom the answer went to. */
function requesterOf(found: Found): string | undefined {
  return found.command?.source ?? found.end?.target ?? found.cancel?.source;
}

/** Who answered: the final's sender, else who accepted it, else whom it was sent to. */
function handlerOf(found: Found): string | undefined {
  return found.end?.source ?? found.accepted?.source ?? (found.command?.target && found.command.target !== '*' ? found.command.target : undefined);
}

type Outcome = { kind: 'ok' | 'failed' | 'timed-out' | 'killed' | 'cancelled' | 'running'; text: string };

/** The end of a request in words (protocol §5.1 codes, §11.5 kills). */
export function outcomeOf(found: Found): Outcome {
  const kill = found.kill && parsed(found.kill.data);
  if (found.kill && found.kill.code === 5) return { kind: 'killed', text: `killed by ${String(kill?.by ?? found.kill.source)}` };
  const end = found.end;
  if (!end) return { kind: 'running', text: found.cancel ? `cancel sent, no answer (${reasonOf(found.cancel)})` : 'no answer yet' };
  if (end.kind === 'put' || end.kind === 'final') return { kind: 'ok', text: 'ok' };
  const error = (parsed(end.data)?.error ?? {}) as { name?: string; message?: string };
  if (end.code === 6 || (found.cancel && /time/i.test(reasonOf(found.cancel)))) return { kind: 'timed-out', text: 'timed out' };
  if (end.code === 5) return { kind: 'cancelled', text: found.cancel ? `cancelled: ${reasonOf(found.cancel)}` : 'cancelled' };
  return { kind: 'failed', text: `failed: ${error.message ?? `code ${end.code}`}` };
}

function reasonOf(cancel: HistoryRow): string {
  const reason = parsed(cancel.data)?.reason;
  return typeof reason === 'string' ? reason : 'no reason given';
}

function parsed(data: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const STEP_NAMES: Record<HistoryRow['kind'], string> = { command: 'sent', accepted: 'accepted', progress: 'progress', final: 'final', error: 'error', cancel: 'cancel', put: 'result stored', kill: 'kill outcome' };

function Timeline({ session, token }: { session: Session; token: string }) {
  const [state, setState] = useState<{ rows?: HistoryRow[]; problem?: string }>({});
  useEffect(() => {
    session.bus.request<HistoryPage>(HISTORY_ACTIONS.get, { token, limit: 1000 }, { timeout: QUERY_TIMEOUT_MS }).then(
      (page) => setState({ rows: page.rows }),
      (error: Error) => setState({ problem: error.message }),
    );
  }, [token]);
  const rows = state.rows ?? [];
  const start = rows[0]?.etime ?? 0;
  const end = rows.find((row) => row.kind === 'final' || row.kind === 'error');
  return (
    <section aria-labelledby="timeline-title">
      <p><a href="#/history">← Search</a></p>
      <h1 id="timeline-title">Request {token}</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      {state.rows && rows.length === 0 && <p>The history holds nothing for this token.</p>}
      {rows.length > 0 && <p>{rows[0]!.action}{end ? `, ended in ${duration(end.etime - start)}` : ', not ended (yet)'}.</p>}
      <ol class="timeline">
        {rows.map((row, index) => (
          <li class={`step step-${row.kind}`} data-kind={row.kind}>
            <span class="when">{index === 0 ? dateTime(row.etime) : `+${duration(row.etime - start)}`}</span>
            {index > 0 && <span class="delta"> (step {duration(row.etime - rows[index - 1]!.etime)})</span>}{' '}
            <strong>{STEP_NAMES[row.kind]}</strong>
            {row.kind === 'progress' && row.progress !== undefined && ` ${Math.round(row.progress * 100)} %`}
            {' '}{row.kind === 'command' ? `by ${row.source}${row.target ? ` to ${row.target}` : ''}` : `from ${row.source}`}
            {' '}<CodeBadge code={row.kind === 'final' || row.kind === 'error' ? row.code : undefined} />
            {row.seal !== undefined ? (
              <code class="data sealed">{sealedText(new SealedPreview(sealedFor(row.seal), row.size))}</code>
            ) : row.sha256 !== undefined ? (
              <code class="data binary">{storedBytesPreview(row.data, row.size, row.sha256)}</code>
            ) : (
              row.data && row.data !== 'null' && <code class="data">{brief(row.data, 300)}</code>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}
