/**
 * The key-value store (protocol §14, docs/kv.md "The page"): the buckets; a bucket's keys with
 * their current values, kept live by a watch, and its latest changes; one entry with its
 * history, edited with compare-and-set (the revision shown is the one expected, so a change made
 * meanwhile is refused and said, never overwritten), deleted the same way, and watched live. A
 * client's `config` entry gets a form drawn from the schema it announced.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { CONFIG_BUCKET, isUpToDate, kvErrorOf, type KvBucketInfo, type KvChange, type KvEntry } from '../../../src/protocol/kv.js';
import { announcedSchema, bytesOf, listBuckets, valueBrief, valueText } from '../model/kv.js';
import type { Session } from '../session.js';
import { ago, clock, dateTime } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { ConfigForm, type FieldIssue } from './config-form.js';

/** Rows a bucket's table shows at most; the filter narrows the rest. */
const SHOWN_KEYS = 500;
/** Latest changes kept under a bucket's table. */
const RECENT_CHANGES = 50;

const entryHref = (bucket: string, key: string) => `#/kv/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;

export function KvView({ session, route }: { session: Session; route: string[] }) {
  const [bucket, key] = route;
  if (!bucket) return <Buckets session={session} />;
  if (key === undefined || key === '') return <Bucket session={session} bucket={bucket} />;
  return <Entry session={session} bucket={bucket} entryKey={key} />;
}

/** A failure as the page says it: the typed store errors by their meaning, anything else by its message. */
function problemOf(error: unknown): string {
  const typed = kvErrorOf(error) as Error & { details?: Record<string, unknown> };
  switch (typed.name) {
    case 'NotAuthorizedError':
      return `Not allowed: ${typed.message}`;
    case 'BucketNotFoundError':
      return `No such bucket, and the router's configuration does not let a write make one.`;
    default:
      return typed.message;
  }
}

function Buckets({ session }: { session: Session }) {
  const [state, setState] = useState<{ buckets?: KvBucketInfo[]; problem?: string }>({});
  const [name, setName] = useState('');
  useEffect(() => {
    listBuckets(session.bus).then(
      ({ buckets }) => setState({ buckets }),
      (error) => setState({ problem: problemOf(error) }),
    );
  }, []);
  return (
    <section aria-labelledby="kv-title">
      <h1 id="kv-title">Key-value store</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <form class="filters" onSubmit={(event) => (event.preventDefault(), name.trim() && (window.location.hash = `#/kv/${encodeURIComponent(name.trim())}`))}>
        <label>
          Open a bucket
          <input value={name} placeholder="settings" onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <button type="submit">Open</button>
        <span class="hint">a bucket is made by its first write</span>
      </form>
      {state.buckets && (
        <div class="table-wrap">
          <table class="kv-buckets">
            <thead>
              <tr><th scope="col">Bucket</th><th scope="col">Keys</th><th scope="col">Revision</th><th scope="col">History kept</th><th scope="col">Largest value</th><th scope="col">Time to live</th></tr>
            </thead>
            <tbody>
              {[...state.buckets].sort((a, b) => a.name.localeCompare(b.name)).map((info) => (
                <tr data-bucket={info.name}>
                  <th scope="row" data-label="Bucket"><a href={`#/kv/${encodeURIComponent(info.name)}`}>{info.name}</a></th>
                  <td data-label="Keys">{info.keys}</td>
                  <td data-label="Revision">{info.revision}</td>
                  <td data-label="History kept">{info.historyDepth} revisions</td>
                  <td data-label="Largest value">{Math.round(info.maxValueBytes / 1024)} KiB</td>
                  <td data-label="Time to live">{info.ttl === undefined ? '—' : `${Math.round(info.ttl / 1000)} s`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {state.buckets?.length === 0 && <p>No bucket yet.</p>}
    </section>
  );
}

interface BucketState {
  /** Current entries by key, from the watch's replay then its live changes. */
  entries: Map<string, KvChange>;
  recent: KvChange[];
  upToDate?: number;
  problem?: string;
}

/** A bucket's keys and values, live: one watch replays the current values, then streams the changes. */
function Bucket({ session, bucket }: { session: Session; bucket: string }) {
  const now = useNow();
  const [filter, setFilter] = useState('');
  const [state, setState] = useState<BucketState>({ entries: new Map(), recent: [] });
  const [draft, setDraft] = useState({ key: '', value: '', problem: '', busy: false });
  useEffect(() => {
    const stop = new AbortController();
    setState({ entries: new Map(), recent: [] });
    void (async () => {
      try {
        for await (const item of session.bus.kv(bucket).watch({ signal: stop.signal })) {
          if (isUpToDate(item)) {
            setState((current) => ({ ...current, upToDate: item.revision }));
            continue;
          }
          setState((current) => {
            const entries = new Map(current.entries);
            if (item.operation === 'put') entries.set(item.key, item);
            else entries.delete(item.key);
            const recent = current.upToDate === undefined ? current.recent : [item, ...current.recent].slice(0, RECENT_CHANGES);
            return { ...current, entries, recent };
          });
        }
      } catch (error) {
        if (!stop.signal.aborted) setState((current) => ({ ...current, problem: problemOf(error) }));
      }
    })();
    return () => stop.abort();
  }, [bucket]);
  const create = async () => {
    const key = draft.key.trim();
    let value: unknown;
    try {
      value = JSON.parse(draft.value);
    } catch (error) {
      return setDraft({ ...draft, problem: `The value is not JSON: ${(error as Error).message}` });
    }
    setDraft({ ...draft, busy: true, problem: '' });
    try {
      // Create only: a key someone else made meanwhile is not overwritten.
      await session.bus.kv(bucket).put(key, value, { expectRevision: 0 });
      window.location.hash = entryHref(bucket, key);
    } catch (error) {
      const typed = kvErrorOf(error) as Error;
      setDraft({ ...draft, busy: false, problem: typed.name === 'RevisionConflictError' ? `${key} exists already: open it to edit it.` : problemOf(error) });
    }
  };
  const needle = filter.trim();
  const rows = [...state.entries.values()].filter((entry) => !needle || entry.key.includes(needle)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return (
    <section aria-labelledby="bucket-title">
      <p><a href="#/kv">← All buckets</a></p>
      <h1 id="bucket-title">Bucket {bucket}</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      <p class="hint" role="status" data-testid="watch-state">
        {state.upToDate === undefined ? 'Reading the current values…' : `Live: up to date at revision ${state.upToDate}${state.recent[0] ? `, last change revision ${state.recent[0].revision}` : ''}.`}
      </p>
      <div class="filters">
        <label>
          Filter keys
          <input type="search" value={filter} onInput={(event) => setFilter(event.currentTarget.value)} />
        </label>
        <span class="count">{rows.length} of {state.entries.size} keys</span>
      </div>
      <div class="table-wrap">
        <table class="kv-keys">
          <thead>
            <tr><th scope="col">Key</th><th scope="col">Value</th><th scope="col">Revision</th><th scope="col">Updated</th><th scope="col">By</th></tr>
          </thead>
          <tbody>
            {rows.slice(0, SHOWN_KEYS).map((entry) => (
              <tr data-key={entry.key} data-revision={entry.revision}>
                <th scope="row" data-label="Key"><a href={entryHref(bucket, entry.key)}>{entry.key}</a></th>
                <td data-label="Value" class="value"><code>{valueBrief(entry.value)}</code></td>
                <td data-label="Revision">{entry.revision}</td>
                <td data-label="Updated" title={dateTime(entry.updated)}>{ago(entry.updated, now)}</td>
                <td data-label="By">{entry.author}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rows.length > SHOWN_KEYS && <p class="hint">{rows.length - SHOWN_KEYS} more: narrow the filter.</p>}
      <h2>New key</h2>
      <form class="kv-new" onSubmit={(event) => (event.preventDefault(), void create())}>
        <label>
          Key
          <input name="new-key" required value={draft.key} onInput={(event) => setDraft({ ...draft, key: event.currentTarget.value })} />
        </label>
        <label>
          Value (JSON)
          <textarea name="new-value" rows={3} class="json" value={draft.value} onInput={(event) => setDraft({ ...draft, value: event.currentTarget.value })} />
        </label>
        <button type="submit" disabled={draft.busy || !draft.key.trim()}>Create</button>
        {draft.problem && <p role="alert" class="problem">{draft.problem}</p>}
      </form>
      <h2>Latest changes</h2>
      {state.recent.length === 0 ? (
        <p class="hint">None since this page opened.</p>
      ) : (
        <ul class="events kv-changes">
          {state.recent.map((change) => (
            <li data-revision={change.revision}>
              <span class="cursor">#{change.revision}</span> <time>{clock(change.updated)}</time> <span class="type">{change.operation}</span>{' '}
              <a href={entryHref(bucket, change.key)}>{change.key}</a> {change.operation === 'put' ? <code>{valueBrief(change.value, 60)}</code> : null} by {change.author}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

interface EntryState {
  entry?: KvEntry;
  /** The key has no value (never written, deleted, expired). */
  absent?: boolean;
  history?: KvEntry[];
  problem?: string;
}

/** One key: its value, history and a compare-and-set editor; a `config` entry also its form. */
function Entry({ session, bucket, entryKey }: { session: Session; bucket: string; entryKey: string }) {
  const kv = session.bus.kv(bucket);
  const [state, setState] = useState<EntryState>({});
  const [text, setText] = useState('');
  /** The revision the editor's text was loaded from: what a save expects. */
  const [base, setBase] = useState<number | undefined>();
  const [dirty, setDirty] = useState(false);
  const [outcome, setOutcome] = useState<{ ok?: string; problem?: string; conflict?: string; issues?: FieldIssue[]; busy?: boolean }>({});
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [schema, setSchema] = useState<Record<string, unknown> | undefined>();
  const dirtyRef = useRef(dirty);
  dirtyRef.current = dirty;

  const load = async (into: 'all' | 'shown') => {
    try {
      const [entry, history] = await Promise.all([
        kv.get(entryKey).catch((error: unknown) => {
          if ((kvErrorOf(error) as Error).name === 'KeyNotFoundError') return undefined;
          throw error;
        }),
        kv.history(entryKey).catch(() => [] as KvEntry[]),
      ]);
      setState({ ...(entry ? { entry } : { absent: true }), history });
      if (into === 'all' || !dirtyRef.current) {
        setText(entry && !bytesOf(entry.value) ? JSON.stringify(entry.value, null, 2) : '');
        setBase(entry?.revision ?? 0);
        setDirty(false);
      }
    } catch (error) {
      setState({ problem: problemOf(error) });
    }
  };

  useEffect(() => {
    setOutcome({});
    setConfirmDelete(false);
    void load('all');
    if (bucket === CONFIG_BUCKET) announcedSchema(session.bus, entryKey).then(
      (announced) => setSchema(announced?.schema),
      () => setSchema(undefined),
    );
    // Live: a change of this key by anyone shows at once; the editor keeps unsaved text.
    const stop = new AbortController();
    void (async () => {
      try {
        let live = false;
        for await (const item of kv.watch({ prefix: entryKey, signal: stop.signal })) {
          if (isUpToDate(item)) live = true;
          else if (live && item.key === entryKey) await load('shown');
        }
      } catch {
        // The page's own problem line says when the store cannot be read.
      }
    })();
    return () => stop.abort();
  }, [bucket, entryKey]);

  const save = async (value: unknown) => {
    setOutcome({ busy: true });
    try {
      const revision = await kv.put(entryKey, value, { expectRevision: base ?? 0 });
      setOutcome({ ok: `Saved: revision ${revision}.` });
      await load('all');
    } catch (error) {
      const typed = kvErrorOf(error) as Error & { details?: { currentRevision?: number; issues?: FieldIssue[] } };
      if (typed.name === 'RevisionConflictError') {
        const current = typed.details?.currentRevision ?? 0;
        setOutcome({ conflict: `Not saved: ${entryKey} changed meanwhile (it is now ${current === 0 ? 'deleted' : `at revision ${current}`}; you edited revision ${base}). Your text is kept: load the latest to compare.` });
      } else if (typed.name === 'ConfigInvalidError' || typed.name === 'InvalidMessageError') {
        setOutcome({ problem: `Not saved: ${typed.message}`, issues: typed.details?.issues ?? [] });
      } else setOutcome({ problem: `Not saved: ${problemOf(error)}` });
    }
  };
  const saveText = () => {
    try {
      void save(JSON.parse(text));
    } catch (error) {
      setOutcome({ problem: `The value is not JSON: ${(error as Error).message}` });
    }
  };
  const remove = async () => {
    setConfirmDelete(false);
    setOutcome({ busy: true });
    try {
      const revision = await kv.delete(entryKey, { expectRevision: base ?? 0 });
      setOutcome({ ok: `Deleted at revision ${revision}.` });
      await load('all');
    } catch (error) {
      const typed = kvErrorOf(error) as Error & { details?: { currentRevision?: number } };
      setOutcome(typed.name === 'RevisionConflictError' ? { conflict: `Not deleted: ${entryKey} changed meanwhile (now at revision ${typed.details?.currentRevision}).` } : { problem: `Not deleted: ${problemOf(error)}` });
    }
  };

  const { entry } = state;
  const bytes = entry ? bytesOf(entry.value) : undefined;
  return (
    <section aria-labelledby="entry-title">
      <p><a href={`#/kv/${encodeURIComponent(bucket)}`}>← Bucket {bucket}</a></p>
      <h1 id="entry-title">{bucket} / {entryKey}</h1>
      {state.problem && <p role="alert" class="problem">{state.problem}</p>}
      {state.absent && <p data-testid="entry-absent">This key has no value{state.history?.length ? ' (deleted or expired; its history is below)' : ''}. Saving creates it.</p>}
      {entry && (
        <dl class="details" data-testid="entry" data-revision={entry.revision}>
          <dt>Revision</dt><dd data-testid="entry-revision">{entry.revision}</dd>
          <dt>Updated</dt><dd>{dateTime(entry.updated)} by {entry.author}</dd>
          <dt>Created</dt><dd>{dateTime(entry.created)}</dd>
          {entry.expires !== undefined && (<><dt>Expires</dt><dd>{dateTime(entry.expires)}</dd></>)}
          <dt>Value</dt><dd><pre data-testid="entry-value">{valueText(entry.value)}</pre></dd>
        </dl>
      )}
      {outcome.ok && <p class="ok" role="status">{outcome.ok}</p>}
      {outcome.conflict && (
        <p role="alert" class="problem" data-testid="conflict">
          {outcome.conflict} <button type="button" onClick={() => (setOutcome({}), void load('all'))}>Load the latest</button>
        </p>
      )}
      {outcome.problem && <p role="alert" class="problem">{outcome.problem}</p>}
      {schema && (
        <section aria-labelledby="config-title">
          <h2 id="config-title">Configuration</h2>
          <p class="hint">The form of the schema {entryKey} announced; the router checks the value against it.</p>
          <ConfigForm schema={schema} value={entry?.value} issues={outcome.issues ?? []} busy={outcome.busy === true} onSubmit={(value) => void save(value)} />
        </section>
      )}
      <h2>{entry ? 'Edit' : 'Write'}</h2>
      {bytes ? (
        <p class="hint">The value is bytes: write it with the CLI (relais kv put {bucket} {entryKey} --file) or the HTTP API.</p>
      ) : (
        <form class="console kv-edit" onSubmit={(event) => (event.preventDefault(), saveText())}>
          <label>
            Value (JSON), expected at revision {base ?? 0}
            <textarea name="value" rows={8} class="json" value={text} onInput={(event) => (setText(event.currentTarget.value), setDirty(true))} />
          </label>
          <div class="row">
            <button type="submit" disabled={outcome.busy}>Save</button>
            {entry && !confirmDelete && <button type="button" onClick={() => setConfirmDelete(true)}>Delete…</button>}
            {confirmDelete && (
              <>
                <span>Delete revision {base}?</span>
                <button type="button" class="danger" onClick={() => void remove()}>Delete</button>
                <button type="button" onClick={() => setConfirmDelete(false)}>Cancel</button>
              </>
            )}
          </div>
        </form>
      )}
      <h2>History</h2>
      {state.history && state.history.length > 0 ? (
        <div class="table-wrap">
          <table class="kv-history">
            <thead>
              <tr><th scope="col">Revision</th><th scope="col">Operation</th><th scope="col">When</th><th scope="col">By</th><th scope="col">Value</th></tr>
            </thead>
            <tbody>
              {[...state.history].reverse().map((revision) => (
                <tr data-revision={revision.revision} data-operation={revision.operation}>
                  <td data-label="Revision">{revision.revision}</td>
                  <td data-label="Operation">{revision.operation}</td>
                  <td data-label="When">{dateTime(revision.updated)}</td>
                  <td data-label="By">{revision.author}</td>
                  <td data-label="Value"><code>{revision.operation === 'put' ? valueBrief(revision.value) : '—'}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p class="hint">No revision kept.</p>
      )}
    </section>
  );
}
