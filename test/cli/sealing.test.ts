/**
 * Sealed payloads in the CLI (protocol §3.6, docs/security.md "Sealed payloads"): sealing keys
 * made and listed with `relais identity keygen|keys|revoke-key --seal`; `call --seal` seals a
 * command for its handler and opens the answer sealed back; `serve --sealed-only` opens sealed
 * commands and refuses others; `notify --seal-for` seals a notification for a list of identities;
 * `sub` prints what it can open and `[sealed for <kid>, N bytes]` for what it cannot; `history`
 * marks sealed rows. The real CLI (dist/), an Aedes broker, a router on a real SQLite file, and a
 * plain MQTT subscriber to `#` standing for the broker's operator.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { loadSealingKeys, readSealingPrivateKey } from '../../src/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { CLI_SUITE_TIMEOUT, runCli, startCli } from '../testkit/cli.js';
import { setup, testLogger, uniqueId, type Kit } from '../testkit/index.js';

interface KeyLine {
  kid: string;
  identity: string;
  publicKey: string;
  revoked?: string;
}

describe('relais with sealed payloads', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let router: Router;
  let dir: string;
  let keysFile: string;
  let env: Record<string, string>;
  const kids: Record<string, string> = {};
  const wire: Buffer[] = [];
  const wireTopics: string[] = [];
  let operator: mqtt.MqttClient;
  const secret = `the-plaintext-${process.pid}-never-on-the-wire`;

  const keyOf = (identity: string) => path.join(dir, 'keys', `${identity}.sealing.key`);
  /** The CLI as `identity`, with its sealing key and the keys file. */
  const as = (identity: string) => ['--id', identity, '--sealing-key', keyOf(identity), '--sealing-keys', keysFile];

  before(async () => {
    kit = await setup('aedes');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-sealing-cli-'));
    keysFile = path.join(dir, 'sealing-keys.json');
    env = { RELAIS_BROKER: kit.broker.url, RELAIS_LOG_LEVEL: 'error', RELAIS_DATA_DIR: dir };
    for (const identity of ['cli-alice', 'cli-handler', 'cli-bob', 'cli-carol']) {
      const made = await runCli(['identity', 'keygen', '--seal', identity, '--file', keysFile, '--out', path.join(dir, 'keys')], env);
      assert.equal(made.code, 0, made.stderr);
      kids[identity] = made.stdout.trim().split('\n').at(-1)!;
    }
    router = await startRouter({ broker: kit.broker.url, database: path.join(dir, 'history.db'), id: uniqueId('router'), logger: testLogger });
    // Everything the broker carries, as its operator could read it.
    operator = mqtt.connect(kit.broker.url, { clientId: uniqueId('operator'), reconnectPeriod: 0 });
    await operator.subscribeAsync('#');
    operator.on('message', (topic, payload) => {
      wire.push(Buffer.from(payload));
      wireTopics.push(topic);
    });
    const handler = await kit.connect('cli-handler', { sealing: { privateKey: readSealingPrivateKey(keyOf('cli-handler')), keys: loadSealingKeys(keysFile) } });
    await handler.handle('cli/sealed/echo', (payload, ctx) => ({ echoed: payload, sealed: ctx.sealed }), { sealed: 'require' });
  });
  after(async () => {
    await operator?.endAsync();
    await router?.close();
    await kit?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const onTheWire = () => Buffer.concat(wire).includes(secret);

  it('identity keygen --seal - an X25519 key per identity: private key 0600 beside the signing one, public key in sealing-keys.json; keys --seal lists it, revoke-key --seal revokes it', async () => {
    const privateKey = keyOf('cli-alice');
    assert.equal(fs.statSync(privateKey).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(privateKey, 'utf8'), /BEGIN PRIVATE KEY/);
    const listed = await runCli(['identity', 'keys', '--seal', '--file', keysFile, '--json'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split('\n').map((line) => JSON.parse(line) as KeyLine);
    assert.deepEqual(lines.map((line) => line.identity).sort(), ['cli-alice', 'cli-bob', 'cli-carol', 'cli-handler']);
    assert.equal(lines.find((line) => line.identity === 'cli-alice')!.kid, kids['cli-alice']);
    // The signing keys file is another file: --seal chose the sealing one.
    const signing = await runCli(['identity', 'keys', '--file', keysFile], env);
    assert.notEqual(signing.code, 0, 'a sealing keys file is not read as signing keys');
    // A throw-away key, revoked: listed as such, and the signing verb does not know it.
    const spare = await runCli(['identity', 'keygen', '--seal', 'cli-spare', '--file', keysFile, '--out', path.join(dir, 'keys')], env);
    const spareKid = spare.stdout.trim().split('\n').at(-1)!;
    const revoked = await runCli(['identity', 'revoke-key', '--seal', spareKid, '--file', keysFile], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`sealing key ${spareKid} revoked`));
    const text = await runCli(['identity', 'keys', '--seal', '--file', keysFile], env);
    assert.match(text.stdout, new RegExp(`${spareKid}\tcli-spare\tcreated=.*\trevoked=`));
  });

  it('call --seal - the command goes sealed for the handler, the answer comes back sealed and is printed opened; the broker carried neither in clear', async () => {
    const result = await runCli(['call', 'cli/sealed/echo', JSON.stringify({ secret }), '--json', '--seal', ...as('cli-alice')], env);
    assert.equal(result.code, 0, result.stderr);
    const final = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; payload: { echoed: { secret: string }; sealed: boolean }; token: string }).at(-1)!;
    assert.equal(final.kind, 'final');
    assert.deepEqual(final.payload, { echoed: { secret }, sealed: true });
    assert.equal(onTheWire(), false, 'the plaintext never crossed the broker');
    // The history keeps the sealed bytes, marked sealed, for the kids they were sealed for.
    const history = await runCli(['history', '--token', final.token, '--steps'], env);
    assert.equal(history.code, 0, history.stderr);
    const rows = history.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; seal?: { to: Array<{ kid: string }> }; data: string });
    const command = rows.find((row) => row.kind === 'command')!;
    const answer = rows.find((row) => row.kind === 'final')!;
    // The command is sealed for the handler and for the requester itself (it reads its own row).
    assert.deepEqual(command.seal!.to.map((to) => to.kid), [kids['cli-handler'], kids['cli-alice']]);
    assert.deepEqual(answer.seal!.to.map((to) => to.kid), [kids['cli-alice']]);
    assert.ok(!rows.some((row) => row.data.includes(secret)), 'no row holds the plaintext');
  });

  it('history - on a terminal, a sealed step reads [sealed for <kid>, N bytes]', async () => {
    const result = await runCli(['call', 'cli/sealed/echo', '{"n":1}', '--json', '--seal', ...as('cli-alice')], env);
    assert.equal(result.code, 0, result.stderr);
    const { token } = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { token: string };
    const { formatRow } = await import('../../src/cli/history-format.js');
    const history = await runCli(['history', '--token', token, '--steps'], env);
    const rows = history.stdout.trim().split('\n').map((line) => JSON.parse(line) as Parameters<typeof formatRow>[0]);
    const command = rows.find((row) => row.kind === 'command')!;
    assert.match(formatRow(command), new RegExp(`\\[sealed for ${kids['cli-handler']}, ${kids['cli-alice']}, ${command.size} bytes\\]$`));
  });

  it('history --sealing-key - the requester reads its own command and the answers opened (marked so); another identity\'s key leaves them sealed', async () => {
    const result = await runCli(['call', 'cli/sealed/echo', JSON.stringify({ secret }), '--json', '--seal', ...as('cli-alice')], env);
    assert.equal(result.code, 0, result.stderr);
    const { token } = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { token: string };
    const { formatRow } = await import('../../src/cli/history-format.js');
    type Row = Parameters<typeof formatRow>[0];
    const read = async (args: string[]) => {
      const history = await runCli(['history', '--token', token, '--steps', ...args], env);
      assert.equal(history.code, 0, history.stderr);
      return history.stdout.trim().split('\n').map((line) => JSON.parse(line) as Row);
    };
    const mine = await read(as('cli-alice'));
    const ownCommand = mine.find((row) => row.kind === 'command')!;
    assert.equal(ownCommand.opened, true, 'the requester reads its own command');
    assert.deepEqual(JSON.parse(ownCommand.data), { secret });
    const opened = mine.find((row) => row.kind === 'final')!;
    assert.equal(opened.opened, true);
    assert.deepEqual(JSON.parse(opened.data), { echoed: { secret }, sealed: true });
    assert.match(formatRow(opened), /\{"echoed":.* \(sealed\)$/);
    const closed = (await read(['--id', 'cli-carol', '--sealing-key', keyOf('cli-carol')])).find((row) => row.kind === 'final')!;
    assert.equal(closed.opened, undefined);
    assert.ok(!closed.data.includes(secret));
    assert.match(formatRow(closed), new RegExp(`\\[sealed for ${kids['cli-alice']}, ${closed.size} bytes\\]$`));
  });

  it('call --seal - without --sealing-keys or --sealing-key it is a usage error (exit 2) naming the option; with no key for the handler, exit 1 and nothing sent', async () => {
    const noKeys = await runCli(['call', 'cli/sealed/echo', '{}', '--seal', '--id', 'cli-alice', '--sealing-key', keyOf('cli-alice')], env);
    assert.equal(noKeys.code, 2);
    assert.match(noKeys.stderr, /--seal needs --sealing-keys/);
    const noKey = await runCli(['call', 'cli/sealed/echo', '{}', '--seal', '--id', 'cli-alice', '--sealing-keys', keysFile], env);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--seal needs --sealing-key /);
    const onlyAlice = path.join(dir, 'only-alice.json');
    const file = JSON.parse(fs.readFileSync(keysFile, 'utf8')) as { version: number; keys: Record<string, KeyLine> };
    fs.writeFileSync(onlyAlice, JSON.stringify({ version: file.version, keys: { [kids['cli-alice']!]: file.keys[kids['cli-alice']!] } }));
    const before = wireTopics.length;
    const unknown = await runCli(['call', 'cli/sealed/echo', JSON.stringify({ secret }), '--seal', '--id', 'cli-alice', '--sealing-key', keyOf('cli-alice'), '--sealing-keys', onlyAlice], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no sealing key for (identity )?cli-handler/);
    assert.ok(!wireTopics.slice(before).some((topic) => topic.startsWith('cli/sealed/echo/request')), 'no command was sent');
  });

  it('call - an unsealed command to a handler that takes sealed ones only is refused, code 3', async () => {
    const result = await runCli(['call', 'cli/sealed/echo', '{}', '--id', 'cli-alice'], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /sealed commands only/);
  });

  it('serve --sealed-only - a program serves sealed commands (it reads the plaintext on stdin) and refuses plain ones', async () => {
    const serving = startCli(['serve', 'cli/sealed/cat', '--sealed-only', ...as('cli-handler'), '--', 'cat'], env);
    try {
      await serving.waitFor(/serving cli\/sealed\/cat/);
      const sealed = await runCli(['call', 'cli/sealed/cat', JSON.stringify({ secret }), '--json', '--seal', ...as('cli-alice')], env);
      assert.equal(sealed.code, 0, sealed.stderr);
      assert.deepEqual((JSON.parse(sealed.stdout.trim().split('\n').at(-1)!) as { payload: unknown }).payload, { secret });
      const plain = await runCli(['call', 'cli/sealed/cat', '{}', '--id', 'cli-alice'], env);
      assert.equal(plain.code, 1);
      assert.match(plain.stderr, /sealed commands only/);
      assert.equal(onTheWire(), false);
      const usage = await runCli(['serve', 'cli/sealed/other', '--sealed-only', '--id', 'cli-handler', '--', 'cat'], env);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--sealed-only needs --sealing-key/);
    } finally {
      await serving.stop();
    }
  });

  it('notify --seal-for - the recipients\' sub prints the plaintext; a sub without the key, or another identity\'s, prints [sealed for <kid>, N bytes]', async () => {
    const topic = `cli/sealed/news${process.pid}`;
    const bob = startCli(['sub', `${topic}/notification`, '-C', '1', '-v', ...as('cli-bob')], env);
    const carol = startCli(['sub', `${topic}/notification`, '-C', '1', '-v', ...as('cli-carol')], env);
    const nobody = startCli(['sub', `${topic}/notification`, '-C', '1', '-v', '--id', uniqueId('cli-nobody')], env);
    try {
      await Promise.all([bob, carol, nobody].map((sub) => sub.waitFor(/subscribed to/)));
      const sent = await runCli(['notify', topic, JSON.stringify({ secret }), '--seal-for', 'cli-bob,cli-alice', '--id', 'cli-alice', '--sealing-keys', keysFile], env);
      assert.equal(sent.code, 0, sent.stderr);
      await bob.waitFor(new RegExp(`${topic}/notification \\{"secret":"${secret}"\\}`));
      const summary = /\[sealed for ([0-9a-f]{16}), ([0-9a-f]{16}), (\d+) bytes\]/;
      for (const outsider of [carol, nobody]) {
        const match = (await outsider.waitFor(new RegExp(`${topic}/notification \\[sealed for`)), outsider.output().match(summary));
        assert.ok(match, outsider.output());
        assert.deepEqual([match[1], match[2]].sort(), [kids['cli-bob'], kids['cli-alice']].sort());
        assert.ok(!outsider.output().includes(secret));
      }
      assert.equal(onTheWire(), false);
      const json = startCli(['sub', `${topic}/notification`, '-C', '1', '--id', uniqueId('cli-json')], env);
      await json.waitFor(/subscribed to/);
      await runCli(['notify', topic, '{"n":2}', '--seal-for', 'cli-bob', '--id', 'cli-alice', '--sealing-keys', keysFile], env);
      await json.waitFor(/"sealed":"unopened"/);
      const line = JSON.parse(json.output().split('\n').find((text) => text.startsWith('{'))!) as { envelope: { payload: string; seal: unknown }; sealed: string };
      assert.match(line.envelope.payload, /^\[sealed for [0-9a-f]{16}, \d+ bytes\]$/);
      assert.ok(line.envelope.seal);
      await json.stop();
    } finally {
      await Promise.all([bob, carol, nobody].map((sub) => sub.stop()));
    }
  });

  it('--sealing-key old,new - during a rotation a receiver opens what was sealed for its old key as well as its new one', async () => {
    const before = path.join(dir, 'before-rotation.json');
    fs.copyFileSync(keysFile, before);
    const rotated = await runCli(['identity', 'keygen', '--seal', 'cli-bob', '--file', keysFile, '--out', path.join(dir, 'keys-new')], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKey = path.join(dir, 'keys-new', 'cli-bob.sealing.key');
    const topic = `cli/sealed/rotation${process.pid}`;
    const onlyNew = startCli(['sub', `${topic}/notification`, '-C', '1', '-v', '--id', 'cli-bob', '--sealing-key', newKey], env);
    const both = startCli(['sub', `${topic}/notification`, '-C', '1', '-v', '--id', uniqueId('cli-bob-too'), '--sealing-key', `${newKey},${keyOf('cli-bob')}`], env);
    try {
      await Promise.all([onlyNew, both].map((sub) => sub.waitFor(/subscribed to/)));
      // A sender whose keys file predates the rotation seals for the old key only.
      const sent = await runCli(['notify', topic, JSON.stringify({ secret }), '--seal-for', 'cli-bob', '--id', 'cli-alice', '--sealing-keys', before], env);
      assert.equal(sent.code, 0, sent.stderr);
      await both.waitFor(new RegExp(`\\{"secret":"${secret}"\\}`));
      await onlyNew.waitFor(new RegExp(`\\[sealed for ${kids['cli-bob']}, \\d+ bytes\\]`));
    } finally {
      await Promise.all([onlyNew, both].map((sub) => sub.stop()));
    }
  });

  it('notify --seal-for - an identity with no sealing key: exit 1 naming it, nothing sent; without --sealing-keys: exit 2', async () => {
    const unknown = await runCli(['notify', 'cli/sealed/none', '{}', '--seal-for', 'cli-stranger', '--sealing-keys', keysFile], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /cli-stranger/);
    const usage = await runCli(['notify', 'cli/sealed/none', '{}', '--seal-for', 'cli-bob'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--seal-for needs --sealing-keys/);
  });
});
