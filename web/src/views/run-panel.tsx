/** One command sent from the console: acceptance, progress bar, streamed output, cancel, the end. */
import { useEffect, useState } from 'preact/hooks';
import type { Run, RunEnd, RunStep } from '../model/run.js';
import { duration, pretty } from '../ui/format.js';

interface Seen {
  sentAt?: number;
  acceptedBy?: string;
  progress?: number;
  output: string[];
  end?: RunEnd;
}

/** Output lines kept on screen per run. */
const LINES_KEPT = 500;

export function RunPanel({ run }: { run: Run }) {
  const [seen, setSeen] = useState<Seen>({ output: [] });
  useEffect(() => {
    let current = true;
    const stop = run.watch((step) => current && setSeen((old) => apply(old, step)));
    void run.done.then((end) => current && setSeen((old) => ({ ...old, end })));
    return () => {
      current = false;
      stop();
    };
  }, [run]);
  const running = !seen.end;
  const percent = seen.end?.ok ? 100 : seen.progress === undefined ? undefined : Math.round(seen.progress * 100);
  // Without a target the library picks the provider: known from its first answer.
  const target = run.target ?? seen.acceptedBy ?? (seen.end?.ok ? seen.end.by : undefined) ?? 'any provider';
  return (
    <article class="run" data-token={run.token} aria-label={`command ${run.action}`}>
      <h2>
        {run.action} → {target} <a href={`#/history/${encodeURIComponent(run.token)}`}>{run.token}</a>
      </h2>
      <p class="run-state" data-state={running ? (seen.acceptedBy ? 'accepted' : seen.sentAt ? 'sent' : 'sending') : seen.end!.ok ? 'done' : 'failed'}>
        {!seen.sentAt && running && 'Sending…'}
        {seen.sentAt && !seen.acceptedBy && running && 'Sent, waiting for a handler to accept it…'}
        {seen.acceptedBy && <span class="accepted">Accepted by {seen.acceptedBy}. </span>}
        {seen.end && (seen.end.ok ? `Done by ${seen.end.by}` : `Failed: ${seen.end.error.name} (code ${seen.end.error.code})`)}
        {seen.end && seen.sentAt !== undefined && ` after ${duration(seen.end.at - seen.sentAt)}.`}
      </p>
      <div class="progress-line">
        <progress max={100} value={percent} aria-label="progress" data-percent={percent ?? ''} />
        <span class="percent">{percent === undefined ? (running ? 'working…' : '') : `${percent} %`}</span>
        {running && <button type="button" class="cancel" onClick={() => run.cancel()}>Cancel</button>}
      </div>
      {seen.output.length > 0 && <pre class="output" aria-label="output">{seen.output.join('\n')}</pre>}
      {seen.end && (seen.end.ok ? (
        <pre class="result" aria-label="result">{pretty(seen.end.payload)}</pre>
      ) : (
        <div class="error-answer" role="alert">
          <strong>{seen.end.error.name}</strong> (code {seen.end.error.code}): {seen.end.error.message}
          {seen.end.error.details !== undefined && <pre>{pretty(seen.end.error.details)}</pre>}
        </div>
      ))}
    </article>
  );
}

function apply(old: Seen, step: RunStep): Seen {
  switch (step.kind) {
    case 'sent':
      return { ...old, sentAt: step.at };
    case 'accepted':
      return { ...old, acceptedBy: step.by };
    case 'progress': {
      const lines = outputLines(step.payload);
      return {
        ...old,
        acceptedBy: old.acceptedBy ?? step.by,
        ...(step.progress !== undefined && { progress: step.progress }),
        output: lines.length ? [...old.output, ...lines].slice(-LINES_KEPT) : old.output,
      };
    }
  }
}

/** What a progress step shows: the agent's output lines (docs/agent.md), else its payload. */
function outputLines(payload: unknown): string[] {
  if (payload === null || payload === undefined) return [];
  const output = (payload as { output?: unknown }).output;
  if (Array.isArray(output)) return output.map((entry: { stream?: string; line?: string }) => (entry.stream === 'stderr' ? `! ${entry.line ?? ''}` : String(entry.line ?? '')));
  return [typeof payload === 'string' ? payload : JSON.stringify(payload)];
}
