/** Topics: the tree of topics seen under `#`, with rates and last messages (MQTT Explorer's view). */
import { useEffect, useState } from 'preact/hooks';
import { rateOf, topicsStore, watchTopics, type TopicInfo } from '../model/topics.js';
import type { Session } from '../session.js';
import { ago, brief, pretty } from '../ui/format.js';
import { useNow } from '../ui/hooks.js';
import { useStore } from '../ui/store.js';

interface Node {
  name: string;
  path: string;
  info?: TopicInfo;
  children: Map<string, Node>;
  /** Messages in this subtree. */
  total: number;
}

function buildTree(topics: Record<string, TopicInfo>): Node {
  const root: Node = { name: '', path: '', children: new Map(), total: 0 };
  for (const [topic, info] of Object.entries(topics)) {
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
  const [problem, setProblem] = useState<string | undefined>();
  useEffect(() => void watchTopics(session.bus).catch((error: Error) => setProblem(error.message)), [session]);
  const tree = buildTree(state.topics);
  const info = selected ? state.topics[selected] : undefined;
  return (
    <section aria-labelledby="topics-title">
      <h1 id="topics-title">Topics</h1>
      {state.denied && <p role="alert" class="problem" data-testid="topics-denied">{state.denied}</p>}
      {problem && <p role="alert" class="problem">{problem}</p>}
      {!state.started && <p role="status">Subscribing to #…</p>}
      <div class="topics">
        <ul class="tree" role="tree" aria-label="topics seen">
          {[...tree.children.values()].sort((a, b) => a.name.localeCompare(b.name)).map((node) => <TreeNode node={node} now={now} selected={selected} onSelect={setSelected} />)}
        </ul>
        <div class="topic-detail" aria-live="polite">
          {info && selected ? (
            <>
              <h2>{selected}</h2>
              <p>{info.count} messages, {rateOf(info, now).toFixed(2)}/s over the last minute, last {ago(info.lastAt, now)}{info.retained ? ' (retained)' : ''}.</p>
              <pre>{prettyText(info.lastText)}</pre>
            </>
          ) : (
            <p>Pick a topic to see its last message.</p>
          )}
        </div>
      </div>
    </section>
  );
}

function prettyText(text: string): string {
  try {
    return pretty(JSON.parse(text));
  } catch {
    return text;
  }
}

function TreeNode({ node, now, selected, onSelect }: { node: Node; now: number; selected: string | undefined; onSelect: (path: string) => void }) {
  const [open, setOpen] = useState(node.children.size < 20);
  const children = [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <li role="treeitem" aria-expanded={children.length ? open : undefined} aria-selected={selected === node.path}>
      {children.length > 0 && (
        <button type="button" class="toggle" aria-label={`${open ? 'collapse' : 'expand'} ${node.path}`} onClick={() => setOpen(!open)}>{open ? '▾' : '▸'}</button>
      )}
      {node.info ? (
        <button type="button" class="topic" onClick={() => onSelect(node.path)} data-topic={node.path}>
          {node.name} <span class="meta">{node.info.count} · {rateOf(node.info, now).toFixed(1)}/s · <code>{brief(node.info.lastText, 60)}</code></span>
        </button>
      ) : (
        <span class="branch">{node.name} <span class="meta">({node.total})</span></span>
      )}
      {open && children.length > 0 && <ul role="group">{children.map((child) => <TreeNode node={child} now={now} selected={selected} onSelect={onSelect} />)}</ul>}
    </li>
  );
}
