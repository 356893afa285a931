/**
 * `relais clients` as a user sees it against `relais start`: what each client runs and serves,
 * a "last seen" that moves with what the client sends, and `--watch` redrawn in place on a terminal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLI_SUITE_TIMEOUT, runCli, startRelais, type RelaisStart } from '../testkit/cli.js';
import { uniqueId } from '../testkit/index.js';
import { runInTerminal, startOnTerminal } from '../testkit/terminal.js';

interface Listed {
  id: string;
  status: string;
  actions: string[];
  connectedSince?: number;
  lastSeen: number;
  info: Record<string, unknown>;
}

describe('relais clients against relais start', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  const action = `${uniqueId('view')}/install`;
  const handlerId = uniqueId('installer');
  const listed = async () => {
    const result = await runCli(['clients'], env);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Listed);
  };

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    const listener = relais.startCli(['sub', '#', '--id', 'watcher-sub']);
    await Promise.all([relais.serve(action, [process.execPath, '-e', `process.stdin.resume().on('end', () => console.log('{}'))`], { id: handlerId }), listener.waitFor(/subscribed to #/)]);
  });

  after(() => relais?.close());

  it('clients on a terminal - a PROGRAM column (sub #, the router by its role) and an ACTIONS column', async () => {
    const shown = await runInTerminal(['clients'], env);
    assert.equal(shown.code, 0, shown.stdout);
    const lines = shown.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+PROGRAM\s+STATUS\s+ACTIONS\s+VERSION\s+HOST\s+PID\s+UP SINCE\s+LAST SEEN$/);
    assert.match(lines.find((line) => line.startsWith('watcher-sub'))!, /^watcher-sub\s+sub #\s+alive\s+-\s/);
    assert.match(lines.find((line) => line.startsWith(handlerId))!, new RegExp(`^${handlerId}\\s+\\S.*\\s+alive\\s+${action}\\s`));
    assert.match(lines.find((line) => line.startsWith('relais-router'))!, /^relais-router\s+\(router\)\s+alive\s+relais\/history\/get, /);
  });

  it('clients - a handler\'s "last seen" moves when it answers, past its "up since"', async () => {
    const before = (await listed()).find((client) => client.id === handlerId)!;
    assert.equal(before.status, 'alive');
    const called = await runCli(['call', action, '{}'], env);
    assert.equal(called.code, 0, called.stderr);
    const afterCall = (await listed()).find((client) => client.id === handlerId)!;
    assert.ok(afterCall.lastSeen > before.lastSeen, `lastSeen ${before.lastSeen} -> ${afterCall.lastSeen}`);
    assert.ok(afterCall.lastSeen > afterCall.connectedSince!, `lastSeen ${afterCall.lastSeen}, connectedSince ${afterCall.connectedSince}`);
  });

  it('clients --watch on a terminal - drawn on the alternate screen from the top, redrawn in place, the screen given back on Ctrl-C', async () => {
    const terminal = startOnTerminal(['clients', '--watch'], env);
    // Two drawings: the first answer, then the refresh that makes "last seen" move.
    await terminal.waitFor(/\x1b\[H[\s\S]*\x1b\[H/, 60_000);
    // Ctrl-C typed on the terminal: its line discipline sends SIGINT to relais.
    terminal.type('\x03');
    assert.equal(await terminal.exited, 0);
    const seen = terminal.output();
    assert.ok(seen.startsWith('\x1b[?1049h') || seen.includes('\x1b[?1049h'), 'enters the alternate screen');
    assert.ok(!seen.includes('\x1b[2J'), 'never clears the whole screen (that flickers and fills the scroll-back)');
    const drawings = seen.split('\x1b[H').slice(1);
    for (const drawing of drawings) assert.match(drawing, /^ID\s+PROGRAM\s+STATUS/);
    assert.ok(seen.includes('\x1b[?1049l'), 'gives the screen back');
  });

  it('clients --watch on a small terminal - draws the rows that fit and says how many are below, redrawn in place', async () => {
    // 7 rows: the header, 4 clients, the count line and a spare; this bus has more clients than that.
    const terminal = startOnTerminal(['clients', '--watch'], env, { rows: 7 });
    try {
      const [drawing] = await terminal.waitFor(/\x1b\[H(?:(?!\x1b\[H)[\s\S])*\d+ clients \((\d+) below the screen: relais clients lists them all\)[\s\S]*?\x1b\[H/, 60_000);
      const lines = drawing.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/\r?\n/).filter((line) => line.trim() !== '');
      assert.ok(lines.length <= 7, `within the 7 rows of the terminal:\n${lines.join('\n')}`);
      assert.match(lines[0]!, /^ID\s+PROGRAM/);
      const [, total, below] = /(\d+) clients \((\d+) below/.exec(drawing)!;
      assert.equal(Number(total) - Number(below), lines.filter((line) => /\s(alive|stopped|dead|starting|unknown)\s/.test(line)).length, 'the rows drawn and the rows below make every client');
    } finally {
      terminal.type('\x03');
      assert.equal(await terminal.exited, 0);
    }
  });
});

