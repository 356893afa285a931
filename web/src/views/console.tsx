/**
 * Console: pick an action the registry knows, write its JSON payload (checked, and
 * against the action's contract when it has one, protocol §7.6), choose target, priority and
 * time-out, send; the run panel follows it.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { PRIORITIES, type Priority } from 'relais/browser';
import { contractHolder, fetchContract, type Contract } from '../model/contracts.js';
import { startRun, type Run } from '../model/run.js';
import type { Session } from '../session.js';
import { pretty } from '../ui/format.js';
import { useStore } from '../ui/store.js';
import { RunPanel } from './run-panel.js';

/** "Whoever serves it": the library picks the alive provider with the fewest requests pending from this page, in rotation among equals (protocol §4.6). */
const ANY = '';
const ALL = '*';

function hashQuery(): URLSearchParams {
  const hash = window.location.hash;
  return new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
}

export function ConsoleView({ session }: { session: Session }) {
  const { clients } = useStore(session.clients);
  const query = useMemo(hashQuery, []);
  const actions = useMemo(() => {
    const known = new Set<string>();
    for (const client of Object.values(clients)) for (const action of [...client.actions, ...client.realtimeActions]) known.add(action);
    return [...known].sort();
  }, [clients]);
  const [action, setAction] = useState(query.get('action') ?? '');
  const [payloadText, setPayloadText] = useState('{}');
  const [target, setTarget] = useState(query.get('target') ?? ANY);
  const [priority, setPriority] = useState<Priority>('normal');
  const [timeoutSeconds, setTimeoutSeconds] = useState(30);
  const [contract, setContract] = useState<{ contract?: Contract; note?: string; check?: (payload: unknown) => string[] }>({});
  const [runs, setRuns] = useState<Run[]>([]);

  const chosen = action || actions[0] || '';
  const providers = Object.entries(clients).filter(([, client]) => client.status === 'alive' && (client.actions.includes(chosen) || client.realtimeActions.includes(chosen))).map(([id]) => id);
  const holder = contractHolder(clients, chosen);
  useEffect(() => {
    setContract({});
    if (!holder) return;
    let current = true;
    fetchContract(session.bus, holder, chosen)
      .then(async (found) => {
        if (!found) return current && setContract({});
        const { payloadChecker } = await import('../model/contract-check.js');
        try {
          if (current) setContract({ contract: found, check: payloadChecker(found.input) });
        } catch (error) {
          if (current) setContract({ contract: found, note: `the contract's schema cannot be checked here (${(error as Error).message}); the handler checks it` });
        }
      })
      .catch((error: Error) => current && setContract({ note: `its contract could not be read from ${holder.id}: ${error.message}` }));
    return () => void (current = false);
  }, [chosen, holder?.id, holder?.hash]);

  const check = useMemo(() => {
    let payload: unknown;
    try {
      payload = JSON.parse(payloadText);
    } catch (error) {
      return { problems: [`not JSON: ${(error as Error).message}`] };
    }
    return { payload, problems: contract.check ? contract.check(payload) : [] };
  }, [payloadText, contract.check]);

  const send = (event: Event) => {
    event.preventDefault();
    if (check.problems.length > 0 || !chosen) return;
    const run = startRun(session.bus, chosen, check.payload, { ...(target !== ANY && { target }), priority, timeout: timeoutSeconds * 1000 });
    setRuns((old) => [run, ...old].slice(0, 10));
  };

  return (
    <section aria-labelledby="console-title">
      <h1 id="console-title">Console</h1>
      <form class="console" onSubmit={send}>
        <label>
          Action
          <select name="action" value={chosen} onChange={(event) => setAction(event.currentTarget.value)}>
            {actions.length === 0 && <option value="">no action is served</option>}
            {actions.map((name) => <option value={name}>{name}</option>)}
          </select>
        </label>
        {contract.contract?.description && <p class="hint">{contract.contract.description}</p>}
        <label>
          Payload (JSON)
          <textarea name="payload" rows={6} spellcheck={false} value={payloadText} aria-invalid={check.problems.length > 0} aria-describedby="payload-problems" onInput={(event) => setPayloadText(event.currentTarget.value)} />
        </label>
        <div id="payload-problems" role="alert" class="problem">{check.problems.map((problem) => <div>{problem}</div>)}</div>
        {contract.note && <p class="hint">{contract.note}</p>}
        {contract.contract && (
          <details>
            <summary>Contract of {chosen} (from {contract.contract.from})</summary>
            <pre>{pretty({ input: contract.contract.input, output: contract.contract.output })}</pre>
          </details>
        )}
        <div class="row">
          <label>
            Target
            <select name="target" value={target} onChange={(event) => setTarget(event.currentTarget.value)}>
              <option value={ANY}>any provider (the least busy)</option>
              {providers.map((id) => <option value={id}>{id}</option>)}
              <option value={ALL}>all providers (*)</option>
            </select>
          </label>
          <label>
            Priority
            <select name="priority" value={priority} onChange={(event) => setPriority(event.currentTarget.value as Priority)}>
              {PRIORITIES.map((name) => <option value={name}>{name}</option>)}
            </select>
          </label>
          <label>
            Time-out (s)
            <input name="timeout" type="number" min={1} max={86400} value={timeoutSeconds} onInput={(event) => setTimeoutSeconds(Math.max(1, Number(event.currentTarget.value) || 30))} />
          </label>
        </div>
        <button type="submit" disabled={!chosen || check.problems.length > 0}>Send</button>
        {chosen && providers.length === 0 && <p class="hint">No alive client serves {chosen} now: the command would fail at once (NoHandlerError).</p>}
      </form>
      {runs.map((run) => <RunPanel key={run.token} run={run} />)}
    </section>
  );
}
