/** History: search the router's rows (protocol §11.2) and open one token as a timeline. */
import { useEffect, useState } from 'preact/hooks';
import { HISTORY_ACTIONS, HISTORY_KINDS, type HistoryPage, type HistoryQuery, type HistoryRow } from '../../../src/protocol/history.js';
import { QUERY_TIMEOUT_MS } from '../model/query.js';
import type { Session } from '../session.js';
import { brief, dateTime, duration } from '../ui/format.js';
import { CodeBadge } from '../ui/status.js';

export function HistoryView({ session, token }: { session: Session; token: string | undefined }) {
  return token ? <Timeline session={session} token={token} /> : <Search session={session} />;
}

interface Found {
  token: string;
  action: string;
  first: number;
  last: number;
  sources: Set<string>;
  end?: HistoryRow;
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
      const page = await session.bus.request<HistoryPage>(HISTORY_ACTIONS.get, query, { timeout: QUERY_TIMEOUT_MS });
      setResult({ found: byToken(page.rows), more: page.more });
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
            <thead><tr><th scope="col">Token</th><th scope="col">Action</th><th scope="col">First seen</th><th scope="col">By</th><th scope="col">End</th></tr></thead>
            <tbody>
              {result.found.map((found) => (
                <tr data-token={found.token}>
                  <th scope="row" data-label="Token"><a href={`#/history/${encodeURIComponent(found.token)}`}>{found.token}</a></th>
                  <td data-label="Action">{found.action}</td>
                  <td data-label="First seen">{dateTime(found.first)}</td>
                  <td data-label="By">{[...found.sources].join(', ')}</td>
                  <td data-label="End">{found.end ? <CodeBadge code={found.end.code ?? 0} /> : '—'}</td>
                </tr>
              ))}
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
    if (!entry) found.set(row.token, (entry = { token: row.token, action: row.action, first: row.etime, last: row.etime, sources: new Set() }));
    entry.first = Math.min(entry.first, row.etime);
    entry.last = Math.max(entry.last, row.etime);
    entry.sources.add(row.source);
    if (row.kind === 'final' || row.kind === 'error' || row.kind === 'put') entry.end = row;
  }
  return [...found.values()].sort((a, b) => b.first - a.first);
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
            {row.data && row.data !== 'null' && <code class="data">{brief(row.data, 300)}</code>}
          </li>
        ))}
      </ol>
    </section>
  );
}
