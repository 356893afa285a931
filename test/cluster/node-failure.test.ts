/**
 * A node of a 3-node NATS cluster killed (SIGKILL) in the middle of a request flood, with
 * requesters and handlers spread over the three nodes and every client given all three URLs
 * (protocol §1.3): every request ends, with its result or a typed error; the clients that
 * were on the dead node are back on another node, announced alive again, and serve and
 * request as before; no command runs twice (not yet: see the last test).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, RelaisError, type Bus } from '../../src/index.js';
import { peerGate, testLogger, waitFor, within } from '../testkit/index.js';
import { startNatsCluster, type NatsCluster } from '../testkit/nats-cluster.js';

const gate = peerGate('nats-server', 'the node-failure test on a NATS cluster');
const NODES = 3;
const PER_REQUESTER = 150;
const IN_FLIGHT = 15;
const KILL_AFTER = 90; // answers, in all, before the node dies
const DEAD = 1;
/** The clients' back-off (protocol §1.1): a client on the dead node tries the next URL after at most this. */
const RECONNECT_MAX_DELAY = 1000;
/**
 * How long a client on the dead node may take to be back on another one: its next attempt
 * (at most the back-off above) plus the survivors' JetStream electing new leaders for what
 * the dead node led, during which their gateways refuse sessions (DEPENDENCIES.md: a few
 * seconds; measured 4–28 s on a 2-core machine, quiet or loaded: to be explained, protocol §1.3).
 */
const BACK_WITHIN = 40_000;
/** How long a moved client may take to serve and be served once back (its subscriptions made again while JetStream settles). */
const SERVED_WITHIN = 30_000;

describe('a NATS cluster node killed during a request flood', { skip: gate.skip, timeout: 300_000 }, () => {
  let cluster: NatsCluster;
  const clients: Bus[] = [];
  /** Every run of the handlers, `<requester> <token>`, and on which handler. */
  const runs: Array<{ command: string; handler: string; at: number }> = [];
  let killedAt: number | undefined;

  /** A client that prefers node `home` and knows the other two (protocol §1.3: tried in turn). */
  async function client(id: string, home: number): Promise<Bus> {
    const urls = [...cluster.urls.slice(home), ...cluster.urls.slice(0, home)];
    const bus = await connect({ id, broker: urls.join(','), logger: testLogger, reconnectDelay: 50, reconnectMaxDelay: RECONNECT_MAX_DELAY });
    clients.push(bus);
    return bus;
  }

  before(async () => {
    cluster = await startNatsCluster({ nodes: NODES });
  });
  after(async () => {
    await Promise.all(clients.map((bus) => bus.close()));
    await cluster?.close();
  });

  it('every request ends with its result or a typed error; the dead node\'s clients are back on another node and serve', async (t) => {
    const handlers = await Promise.all(Array.from({ length: NODES }, (_, node) => client(`flood-handler-${node}-${process.pid}`, node)));
    for (const handler of handlers) {
      await handler.handle('flood/work', async (payload: { n: number }, ctx) => {
        runs.push({ command: `${ctx.source} ${ctx.token}`, handler: handler.id, at: Date.now() });
        // Work that takes a while, so that commands are running when the node dies.
        await new Promise((resolve) => setTimeout(resolve, 5));
        return payload.n;
      });
    }
    const requesters = await Promise.all(Array.from({ length: NODES }, (_, node) => client(`flood-requester-${node}-${process.pid}`, node)));
    for (const requester of requesters) {
      await waitFor(() => (requester.directory.providers('flood/work').size === NODES ? true : undefined), requester.directory, 'change', 20_000);
    }

    const onDeadNode = [handlers[DEAD]!, requesters[DEAD]!];
    const backOnline = onDeadNode.map((bus) => once(bus, 'online').then(() => Date.now()));
    let answered = 0;
    let killed!: () => void;
    const killing = new Promise<void>((resolve) => (killed = resolve));
    const answer = () => {
      answered += 1;
      if (answered === KILL_AFTER) {
        killedAt = Date.now();
        void cluster.kill(DEAD).then(killed);
      }
    };

    type Outcome = { ok: true; n: number; value: unknown } | { ok: false; n: number; error: unknown };
    const flood = async (requester: Bus, offset: number): Promise<Outcome[]> => {
      const outcomes: Outcome[] = [];
      let next = 0;
      const worker = async () => {
        while (next < PER_REQUESTER) {
          const n = offset + next++;
          try {
            const value = await requester.request('flood/work', { n }, { timeout: 20_000 });
            outcomes.push({ ok: true, n, value });
            answer();
          } catch (error) {
            outcomes.push({ ok: false, n, error });
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      return outcomes;
    };
    const outcomes = (await within(Promise.all(requesters.map((requester, i) => flood(requester, i * PER_REQUESTER))), 60_000, 'the end of every request of the flood')).flat();
    await within(killing, 5000, 'the node\'s death');
    assert.ok(killedAt !== undefined, `the node was killed during the flood (${answered} answered)`);

    // Every request ended: with its own result, or with a typed error saying why.
    assert.equal(outcomes.length, NODES * PER_REQUESTER);
    const wrong = outcomes.filter((outcome) => (outcome.ok ? outcome.value !== outcome.n : !(outcome.error instanceof RelaisError)));
    assert.deepEqual(wrong.map((outcome) => (outcome.ok ? `${outcome.n}: answered ${JSON.stringify(outcome.value)}` : `${outcome.n}: ${String(outcome.error)}`)), [], 'a wrong answer or an untyped error');
    const failed = outcomes.filter((outcome) => !outcome.ok) as Array<{ n: number; error: Error }>;
    const failures = new Map<string, number>();
    for (const { error } of failed) failures.set(error.name, (failures.get(error.name) ?? 0) + 1);
    t.diagnostic(`${outcomes.length - failed.length} answered, ${failed.length} failed (${[...failures].map(([name, count]) => `${count} ${name}`).join(', ') || 'none'})`);

    // The dead node's clients are back, on another node (theirs is still dead), within the documented time.
    const backAt = await within(Promise.all(backOnline), BACK_WITHIN, 'the reconnection of the dead node\'s clients');
    const delays = backAt.map((at) => at - killedAt!);
    t.diagnostic(`back on another node ${delays.join(' ms, ')} ms after the kill`);
    for (const delay of delays) assert.ok(delay <= BACK_WITHIN, `back after ${delay} ms`);
    assert.equal(cluster.running(DEAD), false);

    // The moved handler is announced alive again and serves a requester on every other node; the moved requester is served.
    const [movedHandler, movedRequester] = onDeadNode;
    // Late, never wrong: on a loaded machine the survivors' JetStream may still refuse the moved
    // handler's SUBSCRIBE for seconds after its presence is back (the library makes it again).
    const servedAfter: string[] = [];
    for (const requester of requesters) {
      const asked = Date.now();
      await waitFor(() => (requester.directory.get(movedHandler!.id)?.status === 'alive' ? true : undefined), requester.directory, 'change', SERVED_WITHIN);
      const answer = await requester.request('flood/work', { n: -1 }, { target: movedHandler!.id, timeout: SERVED_WITHIN }).catch((error: Error) => {
        throw new Error(`${requester.id} (node ${requester.broker}) was not served by the moved handler ${movedHandler!.id} (node ${movedHandler!.broker}): ${error.message}`, { cause: error });
      });
      assert.equal(answer, -1);
      servedAfter.push(`${requester.id} ${Date.now() - asked} ms`);
    }
    assert.equal(await movedRequester!.request('flood/work', { n: -2 }, { timeout: SERVED_WITHIN }), -2, 'the moved requester is served');
    t.diagnostic(`the moved handler served each requester: ${servedAfter.join(', ')}`);
  });

  // A handler on the dying node took commands whose acknowledgements died with the node; it
  // is not back within their wait and no will says it left (its node would have sent it),
  // so requesters suspect it and move the commands to another handler (protocol §4.7): they
  // run twice. Known and left to the library (docs/protocol.md §1.3, "On a NATS cluster").
  it('no command ran twice', { todo: 'a command whose acknowledgement died with the node runs again on the handler it moves to (protocol §4.7)' }, () => {
    assert.ok(runs.length >= NODES * PER_REQUESTER - 100, `the flood ran (${runs.length} runs)`);
    // No command ran twice: not on two handlers, not twice on one.
    const byCommand = new Map<string, typeof runs>();
    for (const run of runs) byCommand.set(run.command, [...(byCommand.get(run.command) ?? []), run]);
    const twice = [...byCommand].filter(([, each]) => each.length > 1).map(([command, each]) => `${command} on ${each.map((run) => `${run.handler} ${run.at - killedAt!} ms after the kill`).join(' and ')}`);
    assert.deepEqual(twice, [], 'commands that ran twice');
  });
});
