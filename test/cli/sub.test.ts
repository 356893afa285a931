/**
 * `relais sub` and `relais pub` with mosquitto_sub's and mosquitto_pub's habits, as a user runs
 * them against `relais start` (the real binary; `npm test` builds it first).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart, type RunningCli } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';

describe('relais sub and pub, as mosquitto_sub and mosquitto_pub', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  const sub = (args: string[]) => relais.startCli(['sub', ...args]);
  /** Lines on stdout only (stderr says "subscribed to …"). */
  const stdoutLines = (child: RunningCli) => {
    const lines: string[] = [];
    child.child.stdout!.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
    return lines;
  };

  before(async () => {
    relais = await startRelais();
    env = relais.env;
  });

  after(() => relais?.close());

  it("sub '#' -v - prints `topic payload`, leaves out the bus's own relais/… traffic, and -C 1 exits 0 after one", async () => {
    const category = uniqueId('alerts');
    const listener = sub(['#', '-v', '-C', '1']);
    const printed = stdoutLines(listener);
    await listener.waitFor(/subscribed to #/);
    // The notify command's own presence (relais/presence/…) comes before its notification.
    const sent = await runCli(['notify', category, '{"level":"warning"}'], env);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(await listener.stop(), 0); // exits by itself after -C 1; stop() only waits
    assert.deepEqual(printed, [`${category}/notification {"level":"warning"}`]);
  });

  it('sub --internal, or a filter naming relais/ - the presences are printed', async () => {
    const id = uniqueId('announced');
    const everything = sub(['#', '--internal', '-F', '%t']);
    const named = sub(['relais/presence/+', '-F', '%t']);
    await Promise.all([everything.waitFor(/subscribed to #/), named.waitFor(/subscribed to relais\/presence/)]);
    const sent = await runCli(['notify', 'misc/x', '{}', '--id', id], env);
    assert.equal(sent.code, 0, sent.stderr);
    await everything.waitFor(new RegExp(`relais/presence/${id}`));
    await named.waitFor(new RegExp(`relais/presence/${id}`));
  });

  it('pub -r, sub -F %t %r %p, -R, -T, pub -n - retained shown with its flag, skipped with -R or -T, gone once cleared; -W exits 27', async () => {
    const topic = `${uniqueId('rooms')}/kitchen/temp`;
    const retained = await runCli(['pub', '-r', topic, '21.5'], env);
    assert.equal(retained.code, 0, retained.stderr);

    const formatted = await runCli(['sub', topic, '-F', '%t retained=%r %p', '-C', '1', '-W', '60'], env);
    assert.equal(formatted.code, 0, formatted.stderr);
    assert.equal(formatted.stdout, `${topic} retained=1 21.5\n`);

    // mosquitto_sub's time-out: exit 27 and "timed out" when -W passes first.
    const noRetained = await runCli(['sub', topic, '-R', '-v', '-W', '2'], env);
    assert.equal(noRetained.code, 27, noRetained.stderr);
    assert.equal(noRetained.stdout, '');
    assert.match(noRetained.stderr, /timed out/);

    const excluded = await runCli(['sub', `${topic.split('/')[0]}/#`, '-T', '+/kitchen/#', '-v', '-W', '2'], env);
    assert.deepEqual([excluded.code, excluded.stdout], [27, '']);

    const cleared = await runCli(['pub', '-n', topic], env);
    assert.equal(cleared.code, 0, cleared.stderr);
    const after = await runCli(['sub', topic, '-v', '-W', '2'], env);
    assert.deepEqual([after.code, after.stdout], [27, '']);
  });

  it('sub -F with a specifier it does not know, pub -n with a message - usage errors (exit 2) naming what is wrong', async () => {
    const format = await runCli(['sub', '#', '-F', '%t %Z'], env);
    assert.equal(format.code, 2, format.stderr);
    assert.match(format.stderr, /-F: %Z is not a specifier relais sub knows/);
    const clear = await runCli(['pub', '-n', 'x/y', '{}'], env);
    assert.equal(clear.code, 2, clear.stderr);
    assert.match(clear.stderr, /-n\/--clear sends an empty message/);
  });
});
