/**
 * Logs on demand (protocol §11.4): every library client keeps its recent log lines and serves
 * them on `relais/logs/get/request/<its id>`, one retrieval at a time (the lock),
 * with `follow` streaming new lines as progress steps. Run against Aedes and Mosquitto.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { MAX_LOG_FOLLOWS } from '../../src/protocol/logs.js';
import { BusyError, InvalidMessageError, CONTRACTS_ACTION, LOGS_ACTION, NoHandlerError, type Bus, type LogsAnswer, type LogsOptions, type LogsProgress, type ReceivedMessage, type Step } from '../../src/index.js';
import { peerGate, setup, uniqueId, waitFor, within, type BrokerKind, type Kit } from '../testkit/index.js';

const PASSWORD = 'Logs-s3cret-Pa55';

/** A pino logger at `level` whose destination keeps what it is given (to see what the buffer adds). */
function destinationLogger(level: string): { logger: pino.Logger; written: string[] } {
  const written: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level }, sink), written };
}

function messages(answer: LogsProgress): string[] {
  return answer.lines.map((line) => String(line.msg));
}

/** Steps of a call, each awaited with a time-out: a stream that stalls fails the test instead of hanging it. */
/**
 * The follow runs (the lock is held): its acknowledgement, or its backlog, which leaves first and
 * stands for it (protocol §4.7). The caller must know the server acknowledges (its presence, in
 * the caller's directory: `waitForHandler`), or it asks for no acknowledgement.
 */
async function followStarted(steps: AsyncIterator<Step>): Promise<void> {
  const first = await nextStep(steps, 'the follow is accepted');
  assert.ok(first.kind === 'accepted' || first.kind === 'progress', `the follow began with ${first.kind}`);
}

async function nextStep(steps: AsyncIterator<Step>, what: string): Promise<Step> {
  const result = await within(steps.next(), 5000, what);
  assert.ok(!result.done, `${what}: the call ended`);
  return result.value;
}

function logsSuite(kind: BrokerKind, skip: string | false): void {
  describe(`logs on demand (${kind})`, { skip, timeout: 60_000 }, () => {
    let kit: Kit;
    /** A third client that sees every answer of the logs action: tells when a retrieval has ended on the serving side. */
    let observer: Bus;
    const answers: ReceivedMessage[] = [];
    const answered = new EventEmitter();
    const finalTo = (requester: string, check: (message: ReceivedMessage) => boolean = () => true) =>
      waitFor(() => answers.find((message) => message.topic.endsWith(`/response/${requester}`) && message.envelope.final === true && check(message)), answered, 'answer', 10_000);

    before(async () => {
      kit = await setup(kind);
      observer = await kit.connect(uniqueId('log-observer'));
      await observer.subscribe(`${LOGS_ACTION}/response/+`, (message) => {
        answers.push(message);
        answered.emit('answer');
      });
    });
    after(() => kit?.cleanup());

    const serving = async (logs: LogsOptions = {}, level = 'info') => {
      const { logger, written } = destinationLogger(level);
      const bus = await kit.connect(uniqueId('log-server'), { logger, logs });
      return { bus, written };
    };
    const get = (requester: Bus, target: string, payload: unknown = {}) => requester.request<LogsAnswer>(LOGS_ACTION, payload, { target, timeout: 5000 });

    it('logs - serves the newest lines, filtered by lines and level', async () => {
      const { bus: server } = await serving();
      const requester = await kit.connect(uniqueId('log-reader'));
      for (let i = 1; i <= 5; i++) server.logger.info(`info ${i}`);
      server.logger.debug('a debug line below the logger level');
      server.logger.warn({ disk: 'sdb' }, 'warn 1');
      server.logger.error('error 1');

      const lastThree = await get(requester, server.id, { lines: 3 });
      assert.deepEqual(messages(lastThree), ['info 5', 'warn 1', 'error 1']);
      assert.equal(lastThree.lines[1]!.disk, 'sdb', 'lines come as pino wrote them, fields included');
      assert.equal(lastThree.lines[1]!.level, 40);
      assert.equal(lastThree.kept.level, 'info');

      const warnings = await get(requester, server.id, { level: 'warn' });
      assert.deepEqual(messages(warnings), ['warn 1', 'error 1']);

      const all = await get(requester, server.id);
      assert.deepEqual(messages(all), ['info 1', 'info 2', 'info 3', 'info 4', 'info 5', 'warn 1', 'error 1']);
      const resumed = await get(requester, server.id, { after: all.lines.length > 0 ? all.next - 2 : 0 });
      assert.deepEqual(messages(resumed), ['warn 1', 'error 1'], '`after` resumes after a line number');
    });

    it('logs - the built-in action is announced apart: untargeted requests find no handler, users\' actions are chosen as before', async () => {
      const { bus: server } = await serving();
      await server.handle('demo/logs-echo', (payload: unknown) => payload);
      const requester = await kit.connect(uniqueId('log-reader'));
      await requester.waitForHandler('demo/logs-echo', { target: server.id, timeout: 5000 });
      const presence = requester.directory.get(server.id)!;
      assert.deepEqual(presence.actions, ['demo/logs-echo']);
      assert.deepEqual(presence.targetedActions, [LOGS_ACTION, CONTRACTS_ACTION]);
      await assert.rejects(requester.request(LOGS_ACTION, {}, { timeout: 5000 }), NoHandlerError);
      assert.deepEqual(await requester.request('demo/logs-echo', { a: 1 }, { timeout: 5000 }), { a: 1 });
      await assert.rejects(server.handle(LOGS_ACTION, () => null), /already handled/);
    });

    it('logs - a lower buffer level keeps debug lines that the destination does not get', async () => {
      const { bus: server, written } = await serving({ level: 'debug' }, 'warn');
      const requester = await kit.connect(uniqueId('log-reader'));
      server.logger.debug('debug detail');
      server.logger.warn('warn detail');
      const answer = await get(requester, server.id, { level: 'debug' });
      assert.deepEqual(messages(answer), ['debug detail', 'warn detail']);
      assert.equal(answer.kept.level, 'debug');
      const destination = written.join('');
      assert.match(destination, /warn detail/);
      assert.doesNotMatch(destination, /debug detail/, 'the destination keeps the logger level');
    });

    it('logs - bad input gets an error response naming the field, and the client keeps serving', async () => {
      const { bus: server } = await serving();
      const requester = await kit.connect(uniqueId('log-reader'));
      server.logger.info('still here');
      const cases: Array<[unknown, RegExp]> = [
        [{ lines: 'many' }, /field 'lines'/],
        [{ lines: 1e9 }, /field 'lines'.*10000/],
        [{ lines: 0 }, /field 'lines'/],
        [{ level: 'loud' }, /field 'level'/],
        [{ since: -5 }, /field 'since'/],
        [{ follow: 'yes' }, /field 'follow'/],
        [{ tail: 3 }, /tail/],
        ['everything', /field '\(payload\)'/],
      ];
      for (const [payload, expected] of cases) {
        const error = await get(requester, server.id, payload).then(
          () => assert.fail(`${JSON.stringify(payload)} was accepted`),
          (failure: unknown) => failure,
        );
        assert.ok(error instanceof InvalidMessageError, `${JSON.stringify(payload)}: ${String(error)}`);
        assert.match(error.message, expected);
      }
      assert.ok(messages(await get(requester, server.id)).includes('still here'));
    });

    /** `count` follows of `server`'s logs by `requester`, each started (its backlog or acknowledgement seen); `stop` cancels them. */
    const follows = async (requester: Bus, server: Bus, count: number, stop?: AbortSignal) => {
      const started: Array<AsyncIterator<Step>> = [];
      for (let i = 0; i < count; i++) {
        const steps = requester.call(LOGS_ACTION, { follow: true }, { target: server.id, timeout: 30_000, ...(stop && { signal: stop }) });
        await followStarted(steps);
        steps.next().catch(() => {}); // each ends with the cancel, the kill or the time-out
        started.push(steps);
      }
      return started;
    };

    it('logs - one-off retrievals are served while follows run; a follow beyond the most at once is refused with busy, naming the followers, and admitted once one ends', async () => {
      const { bus: server } = await serving();
      const first = await kit.connect(uniqueId('log-follower'));
      const second = await kit.connect(uniqueId('log-reader'));
      const stop = new AbortController();
      await first.waitForHandler(LOGS_ACTION, { target: server.id, timeout: 5000 });
      await follows(first, server, MAX_LOG_FOLLOWS, stop.signal);

      server.logger.info('while followed');
      assert.deepEqual(messages(await get(second, server.id, { lines: 1 })), ['while followed'], 'a one-off retrieval is never refused');

      const started = Date.now();
      const refusal = await second.call(LOGS_ACTION, { follow: true }, { target: server.id, timeout: 5000 }).next().then(
        () => assert.fail(`a follow beyond ${MAX_LOG_FOLLOWS} was served`),
        (failure: unknown) => failure,
      );
      assert.ok(refusal instanceof BusyError, String(refusal));
      assert.equal(refusal.code, 'BUSY');
      assert.match(refusal.message, new RegExp(`followed by ${MAX_LOG_FOLLOWS} readers already \\(${first.id}\\)`));
      assert.equal((refusal.details as { followers: Array<{ requester: string }> }).followers.length, MAX_LOG_FOLLOWS);
      assert.ok(Date.now() - started < 2000, 'refused at once, not after a wait');

      stop.abort();
      await waitFor(() => answers.filter((message) => message.topic.endsWith(`/response/${first.id}`) && message.envelope.final === true).length >= MAX_LOG_FOLLOWS || undefined, answered, 'answer', 10_000);
      const again = new AbortController();
      await follows(second, server, 1, again.signal);
      again.abort();
    });

    it("logs - a follow ends by its time-out when the caller is killed: its slot is not held for ever", async () => {
      const lockTimeout = 700;
      const { bus: server } = await serving({ lockTimeout });
      const caller = await kit.connect(uniqueId('log-vanishing'));
      const other = await kit.connect(uniqueId('log-reader'));
      await caller.waitForHandler(LOGS_ACTION, { target: server.id, timeout: 5000 });
      const started = Date.now();
      await follows(caller, server, 1);
      await caller.kill();

      const ended = await finalTo(caller.id, (message) => (message.envelope.payload as LogsAnswer | null)?.ended === 'lock-timeout');
      assert.ok(ended.envelope.ts! - started >= lockTimeout - 50, `released after ${ended.envelope.ts! - started} ms`);
      server.logger.info('free again');
      assert.deepEqual(messages(await get(other, server.id, { lines: 1 })), ['free again']);
    });

    it('logs - a client that is gone gets NoHandlerError at once', async () => {
      const { bus: server } = await serving();
      const requester = await kit.connect(uniqueId('log-reader'));
      await server.close();
      for (const target of [server.id, uniqueId('never-connected')]) {
        const started = Date.now();
        await assert.rejects(get(requester, target), (error: unknown) => error instanceof NoHandlerError && /is not connected|is stopped/.test(error.message));
        assert.ok(Date.now() - started < 1000, `${target}: refused at once`);
      }
    });

    it('logs - follow streams new lines at the asked level, then stops on cancel', async () => {
      const { bus: server } = await serving();
      const follower = await kit.connect(uniqueId('log-follower'));
      server.logger.warn('before the follow');
      const stop = new AbortController();
      const steps = follower.call(LOGS_ACTION, { follow: true, level: 'warn', lines: 1 }, { target: server.id, timeout: 30_000, signal: stop.signal });
      // The backlog leaves in the turn the command arrived in: it stands for the acknowledgement (protocol §4.7).
      const backlog = await nextStep(steps, 'the backlog');
      assert.equal(backlog.kind, 'progress');
      assert.deepEqual(messages((backlog as { payload: LogsProgress }).payload), ['before the follow']);

      server.logger.info('not at the asked level');
      server.logger.warn('new 1');
      server.logger.error('new 2');
      const fresh = await nextStep(steps, 'the new lines');
      assert.equal(fresh.kind, 'progress');
      const progress = (fresh as { payload: LogsProgress }).payload;
      assert.deepEqual(messages(progress), ['new 1', 'new 2']);
      assert.ok(progress.next > (backlog as { payload: LogsProgress }).payload.next);

      stop.abort();
      await assert.rejects(steps.next(), /cancel/i);
      const final = await finalTo(follower.id);
      assert.equal(final.envelope.code, 5, 'the follow ended as cancelled');
      // Freed: the follow stopped on the serving side, not only for the caller.
      assert.equal((await get(follower, server.id, { lines: 1 })).lines.length, 1);
    });

    it('logs - the buffer is bounded in lines and bytes and keeps the newest', async () => {
      const maxLines = 50;
      const maxBytes = 16 * 1024;
      const { bus: server } = await serving({ maxLines, maxBytes });
      const requester = await kit.connect(uniqueId('log-reader'));
      const newestKept = async (count: number) => {
        const answer = await get(requester, server.id, { lines: 10_000 });
        assert.ok(answer.kept.bytes <= maxBytes, `${answer.kept.bytes} bytes kept`);
        assert.ok(answer.lines.length <= maxLines && answer.kept.lines === answer.lines.length, `${answer.lines.length} lines served`);
        const numbered = messages(answer).map((message) => Number(message.replace(/^line /, '')));
        assert.deepEqual(numbered, numbered.map((_, index) => count - numbered.length + index), 'the newest, consecutive: only the oldest were dropped');
        return answer;
      };

      // Short lines: the count is the bound.
      for (let i = 0; i < 5000; i++) server.logger.info(`line ${i}`);
      assert.equal((await newestKept(5000)).lines.length, maxLines);

      // Long lines: the bytes are.
      const padding = 'x'.repeat(1000);
      for (let i = 0; i < 5000; i++) server.logger.info({ padding }, `line ${i}`);
      const long = await newestKept(5000);
      assert.ok(long.lines.length < maxLines && long.kept.bytes > maxBytes - 1200, `${long.lines.length} lines, ${long.kept.bytes} bytes`);

      // A line larger than the whole buffer is replaced by a short one saying so.
      server.logger.info({ huge: 'y'.repeat(maxBytes * 2) }, 'too large to keep');
      const last = await get(requester, server.id, { lines: 1 });
      assert.match(messages(last)[0]!, /a log line of \d+ bytes was not kept/);
    });

    it('logs - a password in the broker URL never appears in a served line', async () => {
      const { logger } = destinationLogger('info');
      const withPassword = kit.broker.url.replace('://', `://alice:${PASSWORD}@`);
      const server = await kit.connect(uniqueId('log-secretive'), { broker: withPassword, logger, reconnectDelay: 20, reconnectMaxDelay: 100 });
      const requester = await kit.connect(uniqueId('log-reader'));
      const offline = once(server, 'offline');
      const online = once(server, 'online');
      await kit.broker.stop();
      await within(offline, 10_000, 'the server going offline');
      await kit.broker.start();
      await within(online, 20_000, 'the server coming back');
      // Text the library does not control may quote the URL as it was given.
      server.logger.warn({ url: withPassword }, `cannot reach ${withPassword}`);

      await requester.waitForHandler(LOGS_ACTION, { target: server.id, timeout: 10_000 });
      const text = JSON.stringify((await get(requester, server.id, { level: 'trace' })).lines);
      assert.match(text, /connection lost; reconnecting/);
      assert.match(text, /alice:\*\*\*@/);
      assert.ok(!text.includes(PASSWORD), text);
    });
  });
}

logsSuite('aedes', false);
logsSuite('mosquitto', peerGate('mosquitto', 'logs on demand on Mosquitto').skip);
