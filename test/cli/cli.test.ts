import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import mqtt from 'mqtt';
import path from 'node:path';
import { freePort, makeTlsCertificate, peerGate } from '../testkit/brokers.js';
import { CLI_SUITE_TIMEOUT, cliEnvironment, collectRun, RELAIS_BIN, runCli, startCli, startRelais, type RelaisStart } from '../testkit/cli.js';

const openssl = peerGate('openssl', 'the CLI TLS test (a certificate is made for each run)');

describe('relais CLI', { timeout: CLI_SUITE_TIMEOUT }, () => {
  let relais: RelaisStart;
  let env: Record<string, string>;
  let dataDir: string;
  const serve = (action: string, script: string, id?: string) => relais.startCli(['serve', action, ...(id ? ['--id', id] : []), '--', process.execPath, '-e', script]);

  before(async () => {
    relais = await startRelais();
    env = relais.env;
    dataDir = relais.dataDir!;
  });

  after(() => relais?.close());

  it('start - prints where it listens and makes its Unix socket', () => {
    assert.match(relais.cli.output(), /listening on mqtt:\/\/127\.0\.0\.1:\d+ and unix:\/\/\S+relais\.sock/);
    assert.ok(fs.existsSync(path.join(dataDir, 'relais.sock')));
  });

  it('start - refuses a taken port with a clear message', async () => {
    const port = env.RELAIS_BROKER!.split(':').pop()!;
    const result = await runCli(['start', '--web-port', '0', '--port', port, '--data-dir', path.join(dataDir, 'second')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`TCP 127\\.0\\.0\\.1:${port} is already in use`));
  });

  it('start - refuses a limit that is not a positive whole number (exit 2)', async () => {
    const result = await runCli(['start', '--web-port', '0', '--port', '0', '--max-packet', '1MB', '--data-dir', path.join(dataDir, 'limits')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--max-packet must be a positive whole number, got 1MB/);
  });

  it('serve + call - progress lines then the result, exit 0', async () => {
    const server = serve(
      'cli/install',
      `let input = ''; process.stdin.on('data', (c) => (input += c)).on('end', () => {
        for (const p of [20, 50, 80]) console.log(JSON.stringify({ progress: p, step: 'step ' + p }));
        console.log('some plain text the program prints');
        console.log(JSON.stringify({ installed: JSON.parse(input).name }));
      });`,
      'cli-installer',
    );
    await server.waitFor(/serving cli\/install/);
    const result = await runCli(['call', 'cli/install', '{"name":"weather"}'], env);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line));
    const show = (line: { kind: string; progress?: number; source?: string; payload?: { step?: string } }) =>
      line.kind === 'accepted' ? `accepted by ${line.source}` : line.kind === 'progress' ? `${line.progress} ${line.payload!.step}` : `final ${JSON.stringify(line.payload)}`;
    assert.deepEqual(lines.map(show), ['accepted by cli-installer', '0.2 step 20', '0.5 step 50', '0.8 step 80', 'final {"installed":"weather"}']);
  });

  it('serve + call - a failing program is an error response carrying its stderr, exit 1', async () => {
    const server = serve('cli/broken', `console.error('cannot open /dev/sdz'); process.exit(4);`);
    await server.waitFor(/serving cli\/broken/);
    const result = await runCli(['call', 'cli/broken'], env);
    assert.equal(result.code, 1);
    const [accepted, line] = result.stdout.trim().split('\n').map((text) => JSON.parse(text));
    assert.equal(accepted.kind, 'accepted');
    assert.equal(line.kind, 'error');
    assert.equal(line.code, 1);
    assert.match(line.error.message, /exited with code 4: cannot open \/dev\/sdz/);
    assert.match(result.stderr, /cannot open \/dev\/sdz/);
  });

  it('call - shows only the steps that came over the wire: a plain MQTT handler that answers once is shown answering once (no made-up "accepted")', async () => {
    // A foreign handler (MQTT.js alone, no Relais library): it announces nothing and acknowledges nothing.
    const handler = await mqtt.connectAsync(env.RELAIS_BROKER!, { clientId: 'raw-cli-handler', protocolVersion: 4 });
    try {
      handler.on('message', (_topic, payload) => {
        const command = JSON.parse(payload.toString()) as { source: string; token: string };
        const answer = { type: 'response', source: 'raw-cli-handler', destination: command.source, token: command.token, final: true, code: 0, payload: { raw: true } };
        void handler.publishAsync(`cli/raw/response/${command.source}`, JSON.stringify(answer), { qos: 1 });
      });
      await handler.subscribeAsync('cli/raw/request/raw-cli-handler', { qos: 1 });
      const result = await runCli(['call', 'cli/raw', '{}', '--target', 'raw-cli-handler'], env);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { kind: string; payload: unknown });
      assert.deepEqual(lines.map((line) => line.kind), ['final']);
      assert.deepEqual(lines[0]!.payload, { raw: true });
    } finally {
      await handler.endAsync();
    }
  });

  it('call --all --expect - every serving client is called, plus the expected ones; expected ones that are absent: exit 3, named', async () => {
    const server = serve('cli/fan', `process.stdin.resume().on('end', () => console.log(JSON.stringify({ from: 'fan' })));`);
    const [, id] = await server.waitFor(/serving cli\/fan with .* as (\S+)\n/);
    const result = await runCli(['call', 'cli/fan', '{}', '--all', '--expect', 'vm-1', 'vm-2', '--timeout', '10'], env);
    assert.equal(result.code, 3, result.stdout + result.stderr);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id?: string; ok?: boolean; missing?: string; absent?: string[]; summary?: string });
    assert.deepEqual(lines.find((line) => line.id === id), { id, ok: true, payload: { from: 'fan' } });
    assert.deepEqual(lines.filter((line) => line.missing === 'absent').map((line) => line.id), ['vm-1', 'vm-2']);
    assert.deepEqual(lines.at(-1)!.absent, ['vm-1', 'vm-2']);
  });

  it('call - a result larger than a pipe holds reaches the reader whole before the exit', async () => {
    // 900 KB: far more than a pipe takes at once (64 KiB), under the message limit (1 MiB).
    const server = serve('cli/big', `process.stdin.resume().on('end', () => console.log(JSON.stringify({ text: 'x'.repeat(900_000) })));`, 'cli-big');
    await server.waitFor(/serving cli\/big/);
    // A reader that takes its time (a pager, a slow consumer): it reads nothing for a second after the first bytes.
    const child = spawn(process.execPath, [RELAIS_BIN, 'call', 'cli/big', '{}'], { env: cliEnvironment(env), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.once('data', () => {
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), 1000);
    });
    const result = await collectRun(child, 'relais call cli/big');
    assert.equal(result.code, 0, result.stderr);
    const final = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { kind: string; payload: { text: string } };
    assert.equal(final.kind, 'final');
    assert.equal(final.payload.text.length, 900_000);
  });

  it('call - exit 3 when nobody serves the action', async () => {
    const result = await runCli(['call', 'cli/nobody', '{}'], env);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /no connected client serves cli\/nobody/);
  });

  it('call - exit 124 on time-out, and the program is stopped, with what it started', async () => {
    const pidFile = path.join(dataDir, 'slow.pids');
    // The program starts a child of its own and does not pass SIGTERM on: only its process group reaches both.
    const server = serve(
      'cli/slow',
      `const child = require('child_process').spawn('sleep', ['300'], { stdio: 'ignore' });
       require('fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + child.pid);
       process.stdin.resume(); process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);`,
    );
    await server.waitFor(/serving cli\/slow/);
    const result = await runCli(['call', 'cli/slow', '{}', '--timeout', '1'], env);
    assert.equal(result.code, 124);
    assert.match(result.stderr, /no final response to cli\/slow within 1000 ms/);
    const pids = fs.readFileSync(pidFile, 'utf8').split(' ').map(Number);
    assert.equal(pids.length, 2);
    // Ignoring SIGTERM, the program is killed 2 s later with everything it started.
    const gone = (pid: number) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    const deadline = Date.now() + 8000;
    while (!pids.every(gone) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(pids.filter((pid) => !gone(pid)), [], 'the program and its child are gone');
  });

  it('call - a time-out longer than a timer can hold is a usage error, exit 2', async () => {
    const result = await runCli(['call', 'cli/anything', '{}', '--timeout', '3000000'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--timeout must be a positive number of seconds up to 2147483 \(24\.8 days\), got 3000000/);
  });

  it('call - bad JSON is refused before connecting, exit 2', async () => {
    // Nobody listens there: a call that tried to connect first would fail on that instead (exit 1).
    const nowhere = `mqtt://127.0.0.1:${await freePort()}`;
    const result = await runCli(['call', 'cli/install', '{oops', '--broker', nowhere], env);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /the payload is not valid JSON/);
  });

  it('call - options that do not go together are refused before connecting, exit 2, naming them', async () => {
    const nowhere = `mqtt://127.0.0.1:${await freePort()}`;
    const refusals: Array<[string[], RegExp]> = [
      [['--all', '--wait-for-site', '1m'], /--all .* does not go with --wait-for-site/],
      [['--all', '--target', 'somebody'], /--all sends to every handler: it does not go with --target/],
      [['--all', '--seal'], /--seal goes with one handler/],
      [['--expect', 'somebody'], /--expect goes with --all/],
    ];
    for (const [options, message] of refusals) {
      const result = await runCli(['call', 'cli/anything', '{}', '--broker', nowhere, ...options], env);
      assert.equal(result.code, 2, `${options.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  it('sub + notify - one JSON line per message, with the envelope', async () => {
    const listener = relais.startCli(['sub', 'cli/#', '--count', '1']);
    await listener.waitFor(/subscribed to cli\/#/);
    const sent = await runCli(['notify', 'cli/alerts', '{"level":"warning"}', '--id', 'cli-notifier'], env);
    assert.equal(sent.code, 0, sent.stderr);
    await listener.waitFor(/"topic":"cli\/alerts\/notification"/);
    assert.equal(await listener.stop(), 0);
    const line = JSON.parse(listener.output().split('\n').find((text) => text.startsWith('{'))!);
    assert.equal(line.envelope.type, 'notification');
    assert.equal(line.envelope.source, 'cli-notifier');
    assert.deepEqual(line.envelope.payload, { level: 'warning' });
  });

  it('pub, notify - a topic no broker would take is a usage error (exit 2) and nothing is sent', async () => {
    const wildcard = await runCli(['pub', 'x/+/y', '{}'], env);
    assert.equal(wildcard.code, 2, wildcard.stderr);
    assert.match(wildcard.stderr, /cannot publish on "x\/\+\/y": a topic name has no wildcards/);
    const deep = Array.from({ length: 121 }, (_, i) => `l${i}`).join('/');
    const tooDeep = await runCli(['notify', deep, '{}'], env);
    assert.equal(tooDeep.code, 2, tooDeep.stderr);
    assert.match(tooDeep.stderr, /has 121 levels; at most 98/);
    const serveDeep = await runCli(['serve', deep, '--', 'true'], env);
    assert.equal(serveDeep.code, 2, serveDeep.stderr);
  });

  it('pub - publishes raw JSON that sub shows as invalid when it is not an envelope', async () => {
    const listener = relais.startCli(['sub', 'raw/topic', '--count', '1']);
    await listener.waitFor(/subscribed to raw\/topic/);
    const sent = await runCli(['pub', 'raw/topic', '{"temperature":21.5}'], env);
    assert.equal(sent.code, 0, sent.stderr);
    await listener.waitFor(/"invalid"/);
    const line = JSON.parse(listener.output().split('\n').find((text) => text.startsWith('{'))!);
    assert.equal(line.topic, 'raw/topic');
    assert.match(line.invalid, /field 'payload' is required|field 'type'/);
    assert.equal(line.text, '{"temperature":21.5}');
  });

  it('start --ws-port --tls-*: serve over WebSocket, call over TLS with --ca; without it the certificate is refused', { skip: openssl.skip }, async () => {
    const tlsDir = path.join(dataDir, 'tls');
    fs.mkdirSync(tlsDir);
    const { certPath, keyPath } = makeTlsCertificate(tlsDir);
    const secure = await startRelais(['--ws-port', '0', '--tls-port', '0', '--tls-cert', certPath, '--tls-key', keyPath, '--data-dir', tlsDir]);
    try {
      const { wsUrl, tlsUrl } = secure;
      const server = secure.startCli(['serve', 'cli/secure', '--broker', wsUrl!, '--', process.execPath, '-e', 'process.stdin.pipe(process.stdout)']);
      await server.waitFor(/serving cli\/secure/);
      const trusted = await runCli(['call', 'cli/secure', '{"over":"tls"}', '--broker', tlsUrl!, '--ca', certPath], { RELAIS_LOG_LEVEL: 'error' });
      assert.equal(trusted.code, 0, trusted.stderr);
      assert.deepEqual(JSON.parse(trusted.stdout.trim().split('\n').pop()!).payload, { over: 'tls' });
      const untrusted = await runCli(['call', 'cli/secure', '{}', '--broker', tlsUrl!], { RELAIS_LOG_LEVEL: 'error' });
      assert.notEqual(untrusted.code, 0);
      assert.match(untrusted.stderr, /cannot connect to the broker at mqtts:.*self[- ]signed certificate/);
    } finally {
      await secure.close();
    }
  });

  it('serve - a second serve with the same --id takes over; the first exits 1 and says why', async () => {
    const program = ['--', process.execPath, '-e', 'process.stdin.resume(); process.stdin.on("end", () => console.log(JSON.stringify({ pid: process.ppid })))'];
    // Readable lines, as on the terminal a user runs serve in (in a pipe it logs pino's JSON).
    const first = relais.startCli(['serve', 'cli/twin', '--id', 'cli-twin', '--log-format', 'readable', ...program]);
    await first.waitFor(/serving cli\/twin/);
    const second = relais.startCli(['serve', 'cli/twin', '--id', 'cli-twin', ...program]);
    await second.waitFor(/serving cli\/twin/);
    const exitCode = first.child.exitCode ?? (await once(first.child, 'exit'))[0];
    assert.equal(exitCode, 1, first.output());
    assert.match(first.output(), /^\S+ \S+ ERROR relais: another client connected with the id cli-twin .* so this one stops/m);
    const result = await runCli(['call', 'cli/twin', '{}', '--target', 'cli-twin', '--timeout', '10'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout.trim().split('\n').pop()!).payload.pid, second.child.pid);
  });

  it('call - no broker there: one readable line on stderr (no JSON, no password), exit 1', async () => {
    const port = await freePort();
    const result = await runCli(['call', 'cli/anything', '{}', '--broker', `mqtt://alice:hunter2@127.0.0.1:${port}`], { RELAIS_LOG_LEVEL: 'warn' });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`^relais: cannot connect to the broker at mqtt://alice:\\*\\*\\*@127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`, 'm'));
    // The reason once (test/cli/connect-errors.test.ts): no warning of the library before it.
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.doesNotMatch(result.stderr, /"level"|hunter2/);
  });

  it('start - SIGINT stops the broker cleanly with exit 0', async () => {
    const second = startCli(['start', '--web-port', '0', '--port', '0', '--data-dir', path.join(dataDir, 'third')]);
    await second.waitFor(/listening on/);
    const code = await second.stop('SIGINT');
    assert.equal(code, 0, `exit ${code} / ${second.child.signalCode}; output:\n${second.output()}`);
    assert.match(second.output(), /stopped/);
  });
});
