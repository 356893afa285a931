/**
 * The HTTP API against a real `relais start` (broker, router, web server in one process), a
 * real `relais agent`, and a handler of this process connected over TCP (docs/http-api.md).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type Bus } from '../../src/index.js';
import { PRIORITIES } from '../../src/protocol/envelope.js';
import { startCli, startRelais, type RelaisStart, type RunningCli } from '../testkit/cli.js';
import { testLogger, uniqueId } from '../testkit/index.js';
import { http, openStream, pollUntil, tempDir, type Answer } from './web-kit.js';

describe('HTTP API of relais start', { timeout: 120_000 }, () => {
  let dir: string;
  let start: RelaisStart;
  let agent: RunningCli;
  let handler: Bus;
  let base: string;
  const agentId = uniqueId('web-agent');

  const rowsOf = (token: string) => http('GET', `${base}/api/history/${token}`);
  const ended = (answer: Answer) => answer.status === 200 && answer.body.rows.some((row: { kind: string }) => row.kind === 'final' || row.kind === 'error' || row.kind === 'put');

  before(async () => {
    dir = tempDir('api');
    start = await startRelais(['--data-dir', path.join(dir, 'data')], { env: { RELAIS_LOG_LEVEL: 'error' } });
    const broker = start.url;
    base = start.webUrl!.replace(/\/$/, '');
    handler = await connect({ id: uniqueId('web-handler'), broker, logger: testLogger });
    await handler.handle('demo/install', async (payload: { name: string }, ctx) => {
      for (const step of [0.2, 0.5, 0.8]) ctx.progress(step, { step });
      return { installed: payload.name };
    });
    await handler.handle('demo/slow', (_payload, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))));
    const config = { services: { command: { ruleSet: 'web-rules', rules: [{ name: 'echo', shell: true, command: { pattern: 'echo [a-z ]+|exit [0-9]' } }] } } };
    fs.writeFileSync(path.join(dir, 'agent.json'), JSON.stringify(config));
    agent = startCli(['agent', '--id', agentId, '--config', path.join(dir, 'agent.json'), '--broker', broker], { RELAIS_LOG_LEVEL: 'error' });
    await agent.waitFor(/agent \S+ serving/, 15_000).catch(() => undefined);
    await handler.waitForHandler('system/command/batch', { target: agentId, timeout: 15_000 });
  });

  after(async () => {
    await handler?.close();
    await agent?.stop();
    await start?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('POST /api/actions/<action> - 202 with a token at once; the whole lifecycle lands in the history', async () => {
    const sent = await http('POST', `${base}/api/actions/demo/install?priority=high&timeout=5000`, { body: { name: 'weather' } });
    assert.equal(sent.status, 202, sent.text);
    assert.match(sent.body.token, /^[\w-]{8,}$/);
    const history = await pollUntil(() => rowsOf(sent.body.token), ended, 'the final row');
    // The first progress acknowledges the command when it leaves at once (protocol §4.7): no separate accepted row then.
    const kinds = history.body.rows.map((row: { kind: string }) => row.kind).filter((kind: string) => kind !== 'accepted');
    assert.deepEqual(kinds, ['command', 'progress', 'progress', 'progress', 'final']);
    const final = history.body.rows.at(-1);
    assert.equal(final.code, 0);
    assert.deepEqual(JSON.parse(final.data), { installed: 'weather' });
    assert.equal(history.body.rows[0].source, 'relais-web');
    assert.equal(history.body.rows[0].priority, 'high');
  });

  it('POST /api/actions - unknown action 404, bad JSON 400, oversized 413, bad option 400, not JSON 415', async () => {
    const unknown = await http('POST', `${base}/api/actions/demo/nobody`, { body: {} });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'unknown_action');
    assert.match(unknown.body.error.message, /no client serves demo\/nobody/);
    const badJson = await http('POST', `${base}/api/actions/demo/install`, { body: '{"name": ' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.error.code, 'bad_json');
    const large = await http('POST', `${base}/api/actions/demo/install`, { body: { name: 'x'.repeat(1100 * 1024) } });
    assert.equal(large.status, 413);
    assert.equal(large.body.error.code, 'payload_too_large');
    const badPriority = await http('POST', `${base}/api/actions/demo/install?priority=urgent`, { body: {} });
    assert.equal(badPriority.status, 400);
    assert.match(badPriority.body.error.message, /^query\.priority/);
    const text = await http('POST', `${base}/api/actions/demo/install`, { body: 'name=w', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.status, 415);
    const absentTarget = await http('POST', `${base}/api/actions/demo/install?target=nobody-here`, { body: {} });
    assert.equal(absentTarget.status, 404);
  });

  it('GET /api/history - filters reach the router; a bad filter is 400; an unknown token 404', async () => {
    const sent = await http('POST', `${base}/api/actions/demo/install`, { body: { name: 'filtered' } });
    await pollUntil(() => rowsOf(sent.body.token), ended, 'the final row');
    const finals = await http('GET', `${base}/api/history?action=demo/install&kind=final&order=newest&limit=1`);
    assert.equal(finals.status, 200, finals.text);
    assert.equal(finals.body.rows.length, 1);
    assert.equal(finals.body.rows[0].token, sent.body.token);
    assert.equal((await http('GET', `${base}/api/history?kind=finished`)).status, 400);
    assert.equal((await http('GET', `${base}/api/history?limit=0`)).status, 400);
    assert.equal((await http('GET', `${base}/api/history?colour=red`)).status, 400);
    // Rows pulled from a site (protocol §13.5): none here, and the filter reaches the router.
    const ofSite = await http('GET', `${base}/api/history?site=poller-1&action=demo/install`);
    assert.equal(ofSite.status, 200, ofSite.text);
    assert.deepEqual(ofSite.body.rows, []);
    assert.equal((await http('GET', `${base}/api/history?digests=true`)).status, 400, 'digests are for a central over the bus, not the HTTP API');
    const unknown = await http('GET', `${base}/api/history/no-such-token`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'unknown_token');
  });

  it('GET /api/clients - the registry lists the handler and the agent alive; a detail names served actions', async () => {
    const list = await pollUntil(() => http('GET', `${base}/api/clients`), (answer) => answer.body?.clients?.[agentId]?.status === 'alive' && answer.body.clients[handler.id]?.status === 'alive', 'both alive');
    assert.equal(typeof list.body.revision, 'number');
    const detail = await http('GET', `${base}/api/clients/${handler.id}`);
    assert.equal(detail.status, 200);
    assert.deepEqual([...detail.body.clients[handler.id].actions].sort(), ['demo/install', 'demo/slow']);
    const unknown = await http('GET', `${base}/api/clients/nobody-at-all`);
    assert.equal(unknown.status, 404);
  });

  it('POST /api/kill/<token> - cancels a running request (history: cancel, then the code-5 error); again: 409', async () => {
    const sent = await http('POST', `${base}/api/actions/demo/slow?timeout=60000`, { body: {} });
    await pollUntil(() => rowsOf(sent.body.token), (answer) => answer.body?.rows?.some((row: { kind: string }) => row.kind === 'accepted'), 'accepted');
    const killed = await http('POST', `${base}/api/kill/${sent.body.token}`, { body: { reason: 'changed my mind' } });
    assert.equal(killed.status, 200, killed.text);
    assert.equal(killed.body.killed, true);
    assert.equal(killed.body.handler, handler.id);
    const history = await pollUntil(() => rowsOf(sent.body.token), ended, 'the error row');
    const kinds = history.body.rows.map((row: { kind: string }) => row.kind);
    assert.ok(kinds.includes('cancel'), kinds.join());
    assert.equal(history.body.rows.at(-1).code, 5);
    const again = await http('POST', `${base}/api/kill/${sent.body.token}`);
    assert.equal(again.status, 409);
    assert.equal((await http('POST', `${base}/api/kill/never-sent`)).status, 404);
  });

  it('GET /api/events and the SSE stream - resumes from Last-Event-ID without a gap or a duplicate', async () => {
    const latest = (await http('GET', `${base}/api/events?limit=1`)).body.latest as number;
    const notified = (messages: Array<{ data: any }>) => messages.filter((m) => m.data.type === 'notification' && m.data.data.category === 'test/sse').map((m) => m.data.data.payload.n as number);
    const first = await openStream(`${base}/api/events/stream?since=${latest}`);
    assert.match(first.response.headers.get('content-type') ?? '', /^text\/event-stream/);
    for (const n of [1, 2, 3]) handler.notify('test/sse', { n });
    await first.until((messages) => notified(messages).includes(3)).catch((error: Error) => {
      throw new Error(`${error.message}\nrelais start said:\n${start.cli.output().slice(-3000)}`);
    });
    await first.close();
    const lastId = first.messages.at(-1)!.id!;
    for (const n of [4, 5, 6]) handler.notify('test/sse', { n });
    // Stored by the router before the client comes back, as after a real disconnection.
    await pollUntil(() => http('GET', `${base}/api/events?since=${lastId}`), (answer) => answer.body.events.some((event: { data: { payload?: { n?: number } } }) => event.data.payload?.n === 6), 'events 4-6 stored');
    // Plain /api/events with Accept: text/event-stream is the same stream.
    const second = await openStream(`${base}/api/events`, { 'last-event-id': lastId });
    handler.notify('test/sse', { n: 7 });
    await second.until((messages) => notified(messages).includes(7));
    await second.close();
    assert.deepEqual([...notified(first.messages), ...notified(second.messages)], [1, 2, 3, 4, 5, 6, 7]);
    const cursors = [...first.messages, ...second.messages].map((m) => Number(m.id));
    assert.equal(cursors[0], latest + 1);
    cursors.forEach((cursor, i) => i > 0 && assert.equal(cursor, cursors[i - 1]! + 1, `cursor ${cursor} after ${cursors[i - 1]}`));
    const page = await http('GET', `${base}/api/events?since=${latest}&limit=3`);
    assert.deepEqual(page.body.events.map((event: { cursor: number }) => event.cursor), [latest + 1, latest + 2, latest + 3]);
    const bad = await fetch(`${base}/api/events/stream`, { headers: { 'last-event-id': 'yesterday' }, signal: AbortSignal.timeout(5000) });
    await bad.body?.cancel();
    assert.equal(bad.status, 400);
  });

  it('Gorgone - POST /api/core/action/command then GET /api/log/<token> until a final code, in Gorgone shape', async () => {
    for (const url of [`${base}/api/nodes/${agentId}/core/action/command`, `${base}/api/core/action/command`]) {
      // As a Gorgone client does: curl -d without a content type.
      const posted = await http('POST', url, { body: JSON.stringify([{ command: 'echo hello world', timeout: 5 }]), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(posted.status, 200, posted.text);
      assert.deepEqual(Object.keys(posted.body), ['token']);
      const log = await pollUntil(() => http('GET', `${base}/api/log/${posted.body.token}`), (answer) => answer.body.data?.some((row: { code: number }) => row.code === 1 || row.code === 2), 'a final code');
      assert.equal(log.body.message, 'Logs found');
      assert.equal(log.body.token, posted.body.token);
      for (const row of log.body.data) {
        assert.deepEqual(Object.keys(row).sort(), ['code', 'ctime', 'data', 'etime', 'id', 'instant', 'token']);
        assert.equal(row.token, posted.body.token);
        assert.equal(typeof row.data, 'string');
        assert.ok(Number.isInteger(row.ctime) && row.ctime < 1e11, 'seconds, as Gorgone');
      }
      const codes = log.body.data.map((row: { code: number }) => row.code);
      assert.equal(codes[0], 0);
      assert.equal(codes.at(-1), 2);
      assert.equal(codes.filter((code: number) => code === 1 || code === 2).length, 1, `one final row: ${codes}`);
      const result = log.body.data.find((row: { code: number }) => row.code === 100);
      assert.deepEqual(JSON.parse(result.data).result, { exit_code: 0, stdout: 'hello world' });
      assert.equal(JSON.parse(log.body.data[0].data).message, 'commands processing has started');
    }
  });

  it('Gorgone - a failed command ends with code 1; no agent: the log ends at once with a code-1 row saying why', async () => {
    const failing = await http('POST', `${base}/api/nodes/${agentId}/core/action/command`, { body: [{ command: 'exit 3' }, { command: 'echo never' }] });
    const log = await pollUntil(() => http('GET', `${base}/api/nodes/${agentId}/log/${failing.body.token}`), (answer) => answer.body.data?.some((row: { code: number }) => row.code === 1 || row.code === 2), 'a final code');
    assert.equal(log.body.data.at(-1).code, 1);
    assert.equal(log.body.data.filter((row: { code: number }) => row.code === 100).length, 1, 'the second command did not run');
    const nobody = await http('POST', `${base}/api/nodes/no-such-node/core/action/command`, { body: [{ command: 'echo hi' }] });
    assert.equal(nobody.status, 200);
    const why = await http('GET', `${base}/api/log/${nobody.body.token}`);
    assert.equal(why.body.data.length, 1);
    assert.equal(why.body.data[0].code, 1);
    assert.match(JSON.parse(why.body.data[0].data).message, /node no-such-node is not alive or does not serve system\/command\/batch/);
  });

  it("Gorgone - error replies: no_log, endpoint_unknown, method_unknown, decode_error", async () => {
    const none = await http('GET', `${base}/api/log/never-seen`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.body, { error: 'no_log', message: 'No log found for token', data: [], token: 'never-seen' });
    const endpoint = await http('GET', `${base}/api/internal/constatus`);
    assert.deepEqual([endpoint.status, endpoint.body], [404, { error: 'endpoint_unknown', message: 'endpoint not implemented' }]);
    const method = await http('GET', `${base}/api/core/action/command`);
    assert.deepEqual([method.status, method.body], [405, { error: 'method_unknown', message: 'Method not implemented' }]);
    const decode = await http('POST', `${base}/api/core/action/command`, { body: '[{"command": ' });
    assert.deepEqual([decode.status, decode.body], [400, { error: 'decode_error', message: 'Cannot decode response' }]);
    const badNode = await http('POST', `${base}/api/nodes/a+b/core/action/command`, { body: [{ command: 'echo hi' }] });
    assert.equal(badNode.status, 400, badNode.text);
    const notArray = await http('POST', `${base}/api/core/action/command`, { body: { command: 'echo hi' } });
    assert.equal(notArray.status, 400);
    assert.equal(notArray.body.error, 'bad_request');
  });

  it('GET /api/openapi.json - an OpenAPI 3 document listing every route, with the schemas the routes validate with', async () => {
    const answer = await http('GET', `${base}/api/openapi.json`);
    assert.equal(answer.status, 200);
    const document = answer.body;
    assert.match(document.openapi, /^3\./);
    const routes = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([route, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${route}`));
    assert.deepEqual(routes.sort(), [
      'DELETE /api/kv/{bucket}/entries/{key}',
      'GET /api/clients', 'GET /api/clients/{id}', 'GET /api/events', 'GET /api/events/stream', 'GET /api/history', 'GET /api/history/{token}',
      'GET /api/kv', 'GET /api/kv/{bucket}/entries/{key}', 'GET /api/kv/{bucket}/history/{key}', 'GET /api/kv/{bucket}/keys', 'GET /api/kv/{bucket}/watch',
      'GET /api/log/{token}', 'GET /api/nodes/{id}/log/{token}', 'POST /api/actions/{action}', 'POST /api/core/action/command', 'POST /api/kill/{token}',
      'POST /api/nodes/{id}/core/action/command', 'PUT /api/kv/{bucket}/entries/{key}',
    ]);
    const send = document.paths['/api/actions/{action}'].post;
    assert.deepEqual(send.parameters.find((p: { name: string }) => p.name === 'priority').schema.enum, [...PRIORITIES]);
    assert.ok(send.responses['202'] && send.responses['404'] && send.responses['401'] && send.responses['403']);
    const kinds = document.paths['/api/history'].get.parameters.find((p: { name: string }) => p.name === 'kind').schema.enum;
    assert.ok(kinds.includes('progress'));
    assert.ok(document.paths['/api/history'].get.parameters.some((p: { name: string }) => p.name === 'site'), 'the site filter is documented');
    assert.equal(document.paths['/api/core/action/command'].post.requestBody.content['application/json'].schema.type, 'array');
  });

  it('relais start - the config file sets the web server (web.port, web.enabled); SIGINT stops it, port closed', async () => {
    const configFile = path.join(dir, 'relais.json');
    fs.writeFileSync(configFile, JSON.stringify({ version: 1, port: 0, dataDir: 'third', web: { port: 0 } }));
    const third = startCli(['start', '--config', configFile]);
    try {
      const [, url] = await third.waitFor(/web page and HTTP API on (http:\/\/\S+)/);
      assert.notEqual(new URL(url!).port, '8080', 'web.port 0 of the file, not the flag default');
      assert.equal((await http('GET', `${url}api/history?limit=1`)).status, 200);
      assert.equal(await third.stop('SIGINT'), 0);
      await assert.rejects(fetch(`${url}api/history`), 'the web server is closed with relais start');
    } finally {
      await third.stop();
    }
    fs.writeFileSync(configFile, JSON.stringify({ version: 1, port: 0, dataDir: 'fourth', web: { enabled: false } }));
    const fourth = startCli(['start', '--config', configFile]);
    try {
      await fourth.waitFor(/clients connect with/);
      assert.doesNotMatch(fourth.output(), /web page/);
    } finally {
      assert.equal(await fourth.stop('SIGINT'), 0);
    }
  });

  it('relais start - a busy web port fails clearly, naming --web-port', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    const second = startCli(['start', '--port', '0', '--web-port', String(port), '--data-dir', path.join(dir, 'second')]);
    try {
      const [line] = await second.waitFor(/the web server cannot listen on 127\.0\.0\.1:\d+: the port is in use: choose another port with --web-port <port> \(--web-port 0 picks a free one\), or --no-web/);
      assert.ok(line);
      assert.equal(await second.stop(), 1);
      // The reason alone: no warning of a client that lost the broker being stopped under it.
      assert.doesNotMatch(second.output(), /connection lost/);
    } finally {
      busy.close();
    }
  });
});
