/**
 * Topics: the tree of topics seen under `#` (MQTT Explorer's view). A topic's detail shows its
 * payload (the envelope on demand), its flags, its last messages with what changed from one to
 * the next, a plot of its numeric fields, and lets the user delete its retained message; the
 * publish panel sends any message, retained or not. The policy decides what may be published:
 * the page says when the broker did not take it.
 */
import { useEffect, useState } from 'preact/hooks';
import { holdsRetained, lastOf, MESSAGES_KEPT, rateOf, topicsStore, waitForArrival, watchTopics, type TopicInfo, type TopicMessage } from '../model/topics.js';
import type { Session } from '../session.js';
import { LineChart } from '../ui/chart.js';
import { lineDiff } from '../ui/diff.js';
import { ago, brief, BytesPreview, clock, pretty } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { useStore } from '../ui/store.js';

/** How long the page waits for its own message to come back through `#` before it calls it refused. */
const ECHO_TIMEOUT_MS = 3000;
const PLOT_COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea'];

interface Node {
  name: string;
  path: string;
  info?: TopicInfo;
  children: Map<string, Node>;
  /** Messages in this subtree. */
  total: number;
}

function buildTree(topics: Record<string, TopicInfo>, needle: string): Node {
  const root: Node = { name: '', path: '', children: new Map(), total: 0 };
  for (const [topic, info] of Object.entries(topics)) {
    if (needle && !topic.toLowerCase().includes(needle) && !brief(lastOf(info).payload, 4096).toLowerCase().includes(needle)) continue;
    let node = root;
    node.total += info.count;
    for (const level of topic.split('/')) {
      let child = node.children.get(level);
      if (!child) node.children.set(level, (child = { name: level, path: node.path ? `${node.path}/${level}` : level, children: new Map(), total: 0 }));
      child.total += info.count;
      node = child;
    }
    node.info = info;
  }
  return root;
}

export function TopicsView({ session }: { session: Session }) {
  const state = useStore(topicsStore);
  const now = useNow(2000);
  const [selected, setSelected] = useState<string | undefined>();
  const [search, setSearch] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  useEffect(() => void watchTopics(session.bus).catch((error: Error) => setProblem(error.message)), [session]);
  const needle = search.trim().toLowerCase();
  const tree = buildTree(state.topics, needle);
  const info = selected ? state.topics[selected] : undefined;
  return (
    <section aria-labelledby="topics-title">
      <h1 id="topics-title">Topics</h1>
      {state.denied && <p role="alert" class="problem" data-testid="topics-denied">{state.denied}</p>}
      {problem && <p role="alert" class="problem">{problem}</p>}
      {!state.started && <p role="status">Subscribing to #…</p>}
      <div class="topics">
        <div>
          <PublishPanel session={session} topic={selected} />
          <div class="filters">
            <label>
              Search topics
              <input type="search" placeholder="topic or payload text" value={search} onInput={(event) => setSearch(event.currentTarget.value)} />
            </label>
            <span class="count">{tree.children.size === 0 && needle ? 'no topic matches' : `${Object.keys(state.topics).length} topics`}</span>
          </div>
          <ul class="tree" role="tree" aria-label="topics seen">
            {[...tree.children.values()].sort((a, b) => a.name.localeCompare(b.name)).map((node) => <TreeNode node={node} now={now} selected={selected} onSelect={setSelected} forceOpen={needle !== ''} />)}
          </ul>
        </div>
        <div class="topic-detail" aria-live="polite">
          {info && selected ? <TopicDetail session={session} topic={selected} info={info} now={now} /> : <p>Pick a topic to see its last messages.</p>}
        </div>
      </div>
    </section>
  );
}

function TopicDetail({ session, topic, info, now }: { session: Session; topic: string; info: TopicInfo; now: number }) {
  const last = lastOf(info);
  const retained = holdsRetained(info);
  return (
    <>
      <h2>{topic}</h2>
      <p>{info.count} messages, {rateOf(info, now).toFixed(2)}/s over the last minute, last {ago(info.lastAt, now)}.</p>
      <Flags message={last} retained={retained} />
      <pre class="payload" data-testid="payload">{last.empty ? '(empty: clears a retained message)' : pretty(last.payload)}</pre>
      {last.envelope && (
        <details class="envelope">
          <summary>Envelope</summary>
          <pre>{pretty(last.envelope)}</pre>
        </details>
      )}
      {retained && <DeleteRetained session={session} topic={topic} />}
      <NumericPlot messages={info.messages} />
      <h3>Last {info.messages.length} messages{info.count > info.messages.length ? ` (of ${info.count}; the page keeps ${MESSAGES_KEPT})` : ''}</h3>
      <ol class="messages" reversed>
        {info.messages.map((message, at) => <MessageRow message={message} previous={info.messages[at - 1]} />).reverse()}
      </ol>
    </>
  );
}

function Flags({ message, retained }: { message: TopicMessage; retained: boolean }) {
  return (
    <p class="flags">
      {retained && <span class="flag flag-retained" data-flag="retained">retained</span>}
      <span class="flag" data-flag="qos">QoS {message.qos}</span>
      {message.envelope ? <span class="flag" data-flag="envelope">{String(message.envelope.type)} from {String(message.envelope.source ?? '?')}</span> : <span class="flag" data-flag="plain" title={message.invalid}>not an envelope</span>}
      <span class="flag">{message.size} bytes</span>
    </p>
  );
}

function MessageRow({ message, previous }: { message: TopicMessage; previous: TopicMessage | undefined }) {
  const text = message.empty ? '(empty)' : pretty(message.payload);
  const diff = previous ? lineDiff(previous.empty ? '(empty)' : pretty(previous.payload), text) : undefined;
  const changed = diff?.filter((line) => line.kind !== 'same') ?? [];
  return (
    <li class="message">
      <time>{clock(message.at)}</time> {message.retained && <span class="flag">retained</span>} <span class="flag">QoS {message.qos}</span>
      {!previous || !diff ? (
        <pre>{text}</pre>
      ) : changed.length === 0 ? (
        <span class="hint"> same payload as the one before</span>
      ) : (
        <pre class="diff" title="what changed from the one before">
          {diff.map((line) => <div class={`diff-${line.kind}`}>{line.kind === 'added' ? '+ ' : line.kind === 'removed' ? '- ' : '  '}{line.text}</div>)}
        </pre>
      )}
    </li>
  );
}

/** Each numeric field of the payloads (top level, or one level down), over the kept messages. */
function NumericPlot({ messages }: { messages: TopicMessage[] }) {
  const fields = new Map<string, [number, number][]>();
  for (const message of messages) {
    for (const [name, value] of numericFields(message.payload)) fields.set(name, [...(fields.get(name) ?? []), [message.at, value]]);
  }
  const plotted = [...fields].filter(([, points]) => points.length >= 2).slice(0, PLOT_COLOURS.length);
  if (plotted.length === 0) return null;
  return (
    <div class="charts" data-testid="numeric-plot">
      <LineChart title={`Numeric fields: ${plotted.map(([name]) => name).join(', ')}`} unit="" series={plotted.map(([name, points], at) => ({ name, points, colour: PLOT_COLOURS[at]! }))} />
    </div>
  );
}

function numericFields(payload: unknown): [string, number][] {
  if (typeof payload === 'number' && Number.isFinite(payload)) return [['value', payload]];
  // A binary payload (protocol §3.5): its size is the one number it has.
  if (payload instanceof BytesPreview) return [['bytes', payload.size]];
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return [];
  const found: [string, number][] = [];
  for (const [key, value] of Object.entries(payload)) {
    if (typeof value === 'number' && Number.isFinite(value)) found.push([key, value]);
    else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [inner, deeper] of Object.entries(value)) if (typeof deeper === 'number' && Number.isFinite(deeper)) found.push([`${key}.${inner}`, deeper]);
    }
  }
  return found;
}

type Outcome = { busy: true } | { ok: boolean; text: string };

function DeleteRetained({ session, topic }: { session: Session; topic: string }) {
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  useEffect(() => setOutcome(undefined), [topic]);
  const remove = async () => {
    if (!window.confirm(`Delete the retained message of ${topic}? New subscribers will no longer get it.`)) return;
    setOutcome({ busy: true });
    // An empty retained message clears the topic (MQTT 3.1.1 §3.3.1.3).
    const cleared = waitForArrival(topic, '', ECHO_TIMEOUT_MS);
    try {
      session.bus.publish(topic, '', { retain: true });
    } catch (error) {
      return setOutcome({ ok: false, text: `Not sent: ${(error as Error).message}` });
    }
    setOutcome((await cleared) ? { ok: true, text: 'The retained message is deleted.' } : { ok: false, text: refusal(topic, session) });
  };
  return (
    <p class="row">
      <button type="button" onClick={() => void remove()} disabled={outcome !== undefined && 'busy' in outcome}>Delete retained message</button>
      <OutcomeLine outcome={outcome} />
    </p>
  );
}

function PublishPanel({ session, topic }: { session: Session; topic: string | undefined }) {
  const [form, setForm] = useState({ topic: topic ?? '', payload: '', retain: false, qos: '1' });
  const [outcome, setOutcome] = useState<Outcome | undefined>();
  useEffect(() => void (topic && setForm((old) => ({ ...old, topic }))), [topic]);
  const publish = async (event: Event) => {
    event.preventDefault();
    const target = form.topic.trim();
    setOutcome({ busy: true });
    // Sent as written (JSON or any text), as `relais pub` and mosquitto_pub do.
    const echoed = waitForArrival(target, form.payload, ECHO_TIMEOUT_MS, form.retain);
    try {
      session.bus.publish(target, form.payload, { retain: form.retain, qos: form.qos === '0' ? 0 : 1 });
    } catch (error) {
      return setOutcome({ ok: false, text: `Not sent: ${(error as Error).message}` });
    }
    setOutcome((await echoed) ? { ok: true, text: `Published on ${target}${form.retain ? ' (retained)' : ''}.` } : { ok: false, text: refusal(target, session) });
  };
  return (
    <form class="publish" onSubmit={(event) => void publish(event)} aria-labelledby="publish-title">
      <h2 id="publish-title">Publish</h2>
      <label>
        Topic
        <input name="topic" required value={form.topic} onInput={(event) => setForm({ ...form, topic: event.currentTarget.value })} />
      </label>
      <label>
        Message
        <textarea name="message" rows={3} spellcheck={false} value={form.payload} onInput={(event) => setForm({ ...form, payload: event.currentTarget.value })} />
      </label>
      <div class="row">
        <label class="inline">
          <input type="checkbox" name="retain" checked={form.retain} onChange={(event) => setForm({ ...form, retain: event.currentTarget.checked })} /> Retain
        </label>
        <label>
          QoS
          <select name="qos" value={form.qos} onChange={(event) => setForm({ ...form, qos: event.currentTarget.value })}>
            <option value="0">0</option>
            <option value="1">1</option>
          </select>
        </label>
        <button type="submit" disabled={outcome !== undefined && 'busy' in outcome}>Publish</button>
      </div>
      <OutcomeLine outcome={outcome} />
    </form>
  );
}

/** What the page can say when its message did not come back: MQTT 3.1.1 acknowledges a refused PUBLISH and drops it (protocol §5.3). */
function refusal(topic: string, session: Session): string {
  return `Refused: the broker did not pass it on within ${ECHO_TIMEOUT_MS / 1000} s. The policy decides who may publish on ${topic}${session.identity ? ` (logged in as ${session.identity})` : ''}; the broker's log names the rule.`;
}

function OutcomeLine({ outcome }: { outcome: Outcome | undefined }) {
  if (!outcome) return null;
  if ('busy' in outcome) return <span role="status">Waiting for the broker…</span>;
  return <span role={outcome.ok ? 'status' : 'alert'} class={outcome.ok ? 'ok' : 'problem'} data-outcome={outcome.ok ? 'ok' : 'refused'}>{outcome.text}</span>;
}

function TreeNode({ node, now, selected, onSelect, forceOpen }: { node: Node; now: number; selected: string | undefined; onSelect: (path: string) => void; forceOpen: boolean }) {
  const [open, setOpen] = useState(node.children.size < 20);
  const shown = open || forceOpen;
  const children = [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name));
  const last = node.info && lastOf(node.info);
  return (
    <li role="treeitem" aria-expanded={children.length ? shown : undefined} aria-selected={selected === node.path}>
      {children.length > 0 && (
        <button type="button" class="toggle" aria-label={`${shown ? 'collapse' : 'expand'} ${node.path}`} onClick={() => setOpen(!shown)}>{shown ? '▾' : '▸'}</button>
      )}
      {node.info && last ? (
        <button type="button" class="topic" onClick={() => onSelect(node.path)} data-topic={node.path}>
          {node.name} <span class="meta">{node.info.count} · {rateOf(node.info, now).toFixed(1)}/s{holdsRetained(node.info) ? ' · retained' : ''} · <code>{last.empty ? '(empty)' : brief(last.payload, 60)}</code></span>
        </button>
      ) : (
        <span class="branch">{node.name} <span class="meta">({node.total})</span></span>
      )}
      {shown && children.length > 0 && <ul role="group">{children.map((child) => <TreeNode node={child} now={now} selected={selected} onSelect={onSelect} forceOpen={forceOpen} />)}</ul>}
    </li>
  );
}
