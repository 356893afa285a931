/**
 * The history with security on (protocol §11.1-§11.2, docs/security.md "History privacy"): a
 * row is read by the parties of its token and by identities granted history:read-all; a put
 * comes only from a party or opens a new token; the HTTP API acts for its caller; what cannot
 * be encoded again is recorded raw. A real embedded broker enforcing the default policy, the
 * router and the web server in this process, every identity over real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { connect, NotAuthorizedError, RemoteError, TimeoutError, type Bus, type HistoryPage, type HistoryRow } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { loadPolicy } from '../../src/security/policy-file.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { rowsOf, untilRecorded } from '../router/router-contract.js';
import { testLogger, within } from '../testkit/index.js';
import { http, tempDir } from '../web/web-kit.js';

const ROLES = { alice: 'client', bob: 'client', dora: 'client', svc: 'service', root: 'admin', olga: 'observer', 'relais-web': 'admin' } as const;
type Name = keyof typeof ROLES;

describe('history privacy with security on', { timeout: 90_000 }, () => {
  let dir: string;
  let policyFile: string;
  let broker: EmbeddedBroker;
  let router: Router;
  let web: WebServer;
  let base: string;
  const tokens = new Map<Name, string>();
  const buses = new Map<Name, Bus>();
  const brokerLog: string[] = [];
  /** demo/hold answers once the test releases its token. */
  const holds = new Map<string, () => void>();
  const release = (token: string) => holds.get(token)?.();
  const bus = (name: Name) => buses.get(name)!;
  const bearer = (name: Name) => ({ authorization: `Bearer ${name}:${tokens.get(name)}` });
  const get = (name: Name, query: Record<string, unknown>) => bus(name).request('relais/history/get', query) as Promise<HistoryPage>;

  before(async () => {
    dir = tempDir('history-privacy');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, role] of Object.entries(ROLES)) tokens.set(name as Name, (await store.add(name, [role])).token);
    policyFile = path.join(dir, 'policy.json');
    // The default policy; the service serves demo/ (relais identity add svc --serves 'demo/#').
    fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, identities: { ...DEFAULT_POLICY_DATA.identities, svc: { serves: ['demo/#'] } } }));
    // As relais start sets it up: the HTTP API's identity is the process's own, and the router trusts it to name its caller.
    const security = { identities: store, policy: loadPolicy(policyFile), inProcessOnly: ['relais-web'] };
    broker = await startEmbeddedBroker({ port: 0, security, log: (line) => brokerLog.push(line) });
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger, access: { identities: store.file, policy: policyFile, delegates: ['relais-web'] } });
    for (const name of ['alice', 'bob', 'dora', 'svc', 'root', 'olga'] as const) {
      buses.set(name, await connect({ id: name, broker: broker.url!, username: name, password: tokens.get(name)!, realtimeLane: false, logger: testLogger }));
    }
    await bus('svc').handle('demo/echo', (payload) => ({ echo: payload }));
    await bus('svc').handle('demo/deep', () => 'ran');
    await bus('svc').handle('demo/hold', async (_payload, ctx) => {
      ctx.progress(0.5, { holding: true });
      await new Promise<void>((resolve, reject) => {
        holds.set(ctx.token, resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      });
      return { done: true };
    });
    for (const name of ['alice', 'bob', 'dora', 'root', 'olga'] as const) await bus(name).waitForHandler('demo/hold');
    await bus('olga').waitForHandler('relais/history/get');
    web = await startWebServer({ broker, port: 0, security, log: () => {}, logger: testLogger });
    base = web.url.replace(/\/$/, '');
  });

  after(async () => {
    for (const resolve of holds.values()) resolve();
    await web?.close();
    await Promise.all([...buses.values()].map((each) => each.close()));
    await router?.close();
    await broker?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `payload` to demo/echo as `name` and waits until its final is recorded; returns the token. */
  async function echoAs(name: Name, payload: unknown): Promise<string> {
    let token = '';
    for await (const step of bus(name).call('demo/echo', payload)) token = step.token;
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
    return token;
  }

  it("privacy - a client reads only its own requests' rows, over MQTT and HTTP; the handler its own; an admin all; an observer none until the policy grants it history:read-all", async () => {
    const aliceToken = await echoAs('alice', { password: 'alice-secret' });
    const bobToken = await echoAs('bob', { password: 'bob-secret' });

    // alice asks for bob's rows every way the history is read.
    assert.deepEqual((await get('alice', { source: 'bob' })).rows, []);
    assert.deepEqual((await get('alice', { token: bobToken })).rows, []);
    const mine = (await get('alice', { limit: 10_000 })).rows;
    assert.ok(mine.some((row) => row.token === aliceToken && row.kind === 'command'));
    assert.ok(mine.every((row) => !row.data.includes('bob-secret')), 'bob\'s payload reached alice');
    const overHttp = await http('GET', `${base}/api/history?source=bob`, { headers: bearer('alice') });
    assert.equal(overHttp.status, 200, overHttp.text);
    assert.deepEqual(overHttp.body.rows, []);
    assert.equal((await http('GET', `${base}/api/history/${bobToken}`, { headers: bearer('alice') })).status, 404);
    assert.equal((await http('GET', `${base}/api/log/${bobToken}`, { headers: bearer('alice') })).body.error, 'no_log');
    const followed: HistoryRow[] = [];
    await assert.rejects(
      (async () => {
        for await (const row of bus('alice').follow(bobToken, { timeout: 1000 })) followed.push(row);
      })(),
      TimeoutError,
    );
    assert.deepEqual(followed, [], 'follow gave alice rows of bob');

    // Live rows are scoped too: alice follows every demo/echo row while bob and she send one each.
    const live: HistoryRow[] = [];
    const stop = new AbortController();
    const following = (async () => {
      try {
        for await (const step of bus('alice').call('relais/history/follow', { action: 'demo/echo', afterId: mine.at(-1)!.id }, { signal: stop.signal, timeout: 30_000 })) {
          if (step.kind === 'progress') live.push(...(step.payload as HistoryRow[]));
        }
      } catch {
        // stopped
      }
    })();
    await echoAs('bob', { password: 'bob-again' });
    const aliceAgain = await echoAs('alice', { n: 2 });
    await within(
      (async () => {
        while (!live.some((row) => row.token === aliceAgain && row.kind === 'final')) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      10_000,
      "alice's own live final",
    );
    stop.abort();
    await following;
    assert.ok(live.every((row) => row.source !== 'bob' && row.target !== 'bob'), `live rows of bob reached alice: ${JSON.stringify(live)}`);

    // The handler reads what it handled; the admin reads everything.
    assert.ok((await get('svc', { token: bobToken })).rows.length >= 2);
    const byAdmin = await http('GET', `${base}/api/history?source=bob`, { headers: bearer('root') });
    assert.ok(byAdmin.body.rows.some((row: HistoryRow) => row.token === bobToken), byAdmin.text);
    assert.ok((await get('root', { token: aliceToken })).rows.some((row) => row.data.includes('alice-secret')));

    // An observer asks, and sees nothing of others' requests until the operator grants it.
    assert.deepEqual((await get('olga', { token: bobToken })).rows, []);
    const granted = structuredClone(DEFAULT_POLICY_DATA) as { roles: Record<string, { grants: string[] }> };
    granted.roles.observer!.grants = ['history:read-all'];
    fs.writeFileSync(policyFile, JSON.stringify(granted));
    assert.ok((await get('olga', { token: bobToken })).rows.length >= 2, 'the grant in the policy file did not apply');
    // The default policy; the service serves demo/ (relais identity add svc --serves 'demo/#').
    fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, identities: { ...DEFAULT_POLICY_DATA.identities, svc: { serves: ['demo/#'] } } }));
    assert.deepEqual((await get('olga', { token: bobToken })).rows, []);
  });

  /** Sends demo/hold as `name`; resolves with its token once the handler holds it (its progress is recorded). */
  async function holdAs(name: Name): Promise<{ token: string; done: Promise<void> }> {
    const steps = bus(name).call('demo/hold', {});
    const token = ((await steps.next()).value as { token: string }).token;
    const done = (async () => {
      for await (const _step of steps);
    })();
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
    return { token, done };
  }

  /** What `name` follows of `token` until its end. */
  async function followAs(name: Name, token: string): Promise<HistoryRow[]> {
    const rows: HistoryRow[] = [];
    for await (const row of bus(name).follow(token, { timeout: 10_000 })) rows.push(row);
    return rows;
  }

  /** The request ended with the handler's final, and nobody's put is stored on it. */
  async function assertTrueEnd(rows: HistoryRow[], token: string): Promise<void> {
    const end = rows.at(-1)!;
    assert.deepEqual([end.kind, end.source, end.code], ['final', 'svc', 0], `follow ended on ${JSON.stringify(end)}`);
    assert.deepEqual((await rowsOf(router, token)).filter((row) => row.kind === 'put'), [], `a forged put was stored on ${token}`);
  }

  it("puts - a put on alice's predicted next token does not end her request: tokens are random, follow ends on the true final", async () => {
    // bob guesses alice's next token from her last one (library tokens were a prefix and a counter).
    const last = await echoAs('alice', {});
    const counter = /^(.*)\.([0-9a-z]+)$/.exec(last);
    const predicted = counter ? `${counter[1]}.${(parseInt(counter[2]!, 36) + 1).toString(36)}` : `${last}-next`;
    await bus('bob').request('relais/history/put', { token: predicted, action: 'demo/hold', code: 2, data: { forged: 'predicted' } });
    const { token, done } = await holdAs('alice');
    const following = followAs('alice', token);
    release(token);
    await done;
    await assertTrueEnd(await following, token);
    assert.match(token, /^[A-Za-z0-9_-]{16}$/, '96 random bits');
  });

  it('puts - over MQTT, bob cannot put on a running request of alice, nor claim to ask on behalf of her; the refusal does not say whose it is', async () => {
    const { token, done } = await holdAs('alice');
    await assert.rejects(bus('bob').request('relais/history/put', { token, code: 2, data: { forged: 'mqtt' } }), (error: RemoteError) => {
      assert.equal(error.code, new NotAuthorizedError('').code);
      assert.doesNotMatch(error.message, /alice/);
      return true;
    });
    // onBehalfOf is the HTTP API's alone.
    await assert.rejects(bus('bob').request('relais/history/put', { token, code: 2 }, { onBehalfOf: 'alice' }), (error: RemoteError) => error.code === new NotAuthorizedError('').code);
    await assert.rejects(bus('bob').request('relais/history/get', { token }, { onBehalfOf: 'alice' }), (error: RemoteError) => error.code === new NotAuthorizedError('').code);
    const following = followAs('alice', token);
    release(token);
    await done;
    await assertTrueEnd(await following, token);
  });

  it('puts - over HTTP, the API acts for its caller: bob cannot put on the request alice sent through it; her own put and command name her, not the API', async () => {
    const sent = await http('POST', `${base}/api/actions/demo/hold`, { body: {}, headers: bearer('alice') });
    assert.equal(sent.status, 202, sent.text);
    const token = sent.body.token as string;
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
    const forged = await http('POST', `${base}/api/actions/relais/history/put`, { body: { token, code: 2, data: { forged: 'http' } }, headers: bearer('bob') });
    assert.equal(forged.status, 202, forged.text);
    // alice's own put through the API, sent after bob's: once it is stored, bob's has been judged.
    const note = `note-${token}`;
    const own = await http('POST', `${base}/api/actions/relais/history/put`, { body: { token: note, action: 'demo/note', code: 0, data: { by: 'alice' } }, headers: bearer('alice') });
    assert.equal(own.status, 202, own.text);
    await untilRecorded(router, async () => (await rowsOf(router, note)).length > 0);
    const following = followAs('root', token);
    release(token);
    await assertTrueEnd(await following, token);
    assert.deepEqual([(await rowsOf(router, note))[0]!.source, (await rowsOf(router, note))[0]!.via], ['alice', 'relais-web']);
    assert.equal((await rowsOf(router, token)).find((row) => row.kind === 'command')!.source, 'alice');
    assert.ok((await get('alice', { token })).rows.length >= 2);
    assert.equal((await http('GET', `${base}/api/history/${token}`, { headers: bearer('bob') })).status, 404);
  });

  it('kill - alice kills over HTTP the request she sent through it: the handler is aborted, the history names her as the requester and the API as its carrier', async () => {
    const sent = await http('POST', `${base}/api/actions/demo/hold`, { body: {}, headers: bearer('alice') });
    assert.equal(sent.status, 202, sent.text);
    const token = sent.body.token as string;
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
    const command = (await rowsOf(router, token)).find((row) => row.kind === 'command')!;
    assert.deepEqual([command.source, command.via], ['alice', 'relais-web']);
    const killed = await http('POST', `${base}/api/kill/${token}`, { headers: bearer('alice') });
    assert.equal(killed.status, 200, killed.text);
    assert.deepEqual([killed.body.requester, killed.body.by, killed.body.killed, killed.body.outcome], ['alice', 'alice', true, 'cancelled']);
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'error'));
    const end = (await rowsOf(router, token)).find((row) => row.kind === 'error')!;
    assert.deepEqual([end.source, end.code], ['svc', 5], 'the handler was aborted');
  });

  it("kill - another client identity cannot kill alice's request, over HTTP (403) or MQTT (code 4); an admin (requests:kill-any) can", async () => {
    const sent = await http('POST', `${base}/api/actions/demo/hold`, { body: {}, headers: bearer('alice') });
    const token = sent.body.token as string;
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'progress'));
    const overHttp = await http('POST', `${base}/api/kill/${token}`, { headers: bearer('bob') });
    assert.equal(overHttp.status, 403, overHttp.text);
    assert.match(overHttp.body.error.message, /only its identity or an administrator may kill it/);
    await assert.rejects(bus('bob').request('relais/requests/kill', { token }), NotAuthorizedError);
    assert.ok(!(await rowsOf(router, token)).some((row) => row.kind === 'cancel'), 'no cancel was sent for bob');
    const byAdmin = await http('POST', `${base}/api/kill/${token}`, { headers: bearer('root') });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.deepEqual([byAdmin.body.by, byAdmin.body.killed], ['root', true]);
  });

  it('puts - on a token the history has not seen, the put opens it for its author alone', async () => {
    const opened = `offline-${Date.now()}`;
    const row = (await bus('dora').request('relais/history/put', { token: opened, action: 'demo/offline', code: 0, data: { done: true } })) as HistoryRow;
    assert.deepEqual([row.kind, row.source], ['put', 'dora']);
    await assert.rejects(bus('bob').request('relais/history/put', { token: opened, code: 2 }), (error: RemoteError) => error.code === new NotAuthorizedError('').code);
    assert.deepEqual((await get('bob', { token: opened })).rows, []);
    assert.equal((await get('dora', { token: opened })).rows.length, 1);
  });

  it('digests - rows come with their digest only for history:read-all (an admin); a client or a service gets code 4 saying why (protocol §13.5)', async () => {
    const token = await echoAs('alice', { for: 'digests' });
    const rows = (await get('root', { token, digests: true })).rows;
    assert.ok(rows.length >= 2 && rows.every((row) => typeof row.digest === 'string' && row.digest.length > 0), JSON.stringify(rows));
    assert.equal('digest' in (await get('root', { token })).rows[0]!, false, 'not asked, not given');
    for (const name of ['alice', 'svc'] as const) {
      await assert.rejects(get(name, { token, digests: true }), (error: RemoteError) => {
        assert.equal(error.code, new NotAuthorizedError('').code);
        assert.match(error.message, new RegExp(`digests: true needs history:read-all, which ${name} does not hold`));
        return true;
      });
    }
  });

  it('sites - relais/sites/get is served by the router under security: an admin asks it', async () => {
    const answer = (await bus('root').request('relais/sites/get', {}, { target: 'relais-router' })) as { site: string; sites: Record<string, unknown> };
    assert.deepEqual(answer, { site: 'central', sites: {} });
  });

  it('sites - a client, a service and an observer ask relais/sites/get too (the default policy lets every role ask the router about links)', async () => {
    for (const name of ['alice', 'svc', 'olga'] as const) {
      const answer = (await bus(name).request('relais/sites/get', {}, { target: 'relais-router', timeout: 3000 })) as { site: string };
      assert.equal(answer.site, 'central', name);
    }
  });

  it("the HTTP API's identity is the process's own: a network CONNECT or an HTTP caller proving it is refused", async () => {
    const client = mqtt.connect(broker.url!, { clientId: 'relais-web', username: 'relais-web', password: tokens.get('relais-web')!, protocolVersion: 4, reconnectPeriod: 0 });
    const refused = await within(new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve)), 5000, 'the refusal');
    client.end(true);
    assert.equal(refused.code, 5);
    assert.ok(brokerLog.some((line) => /refused CONNECT of identity "relais-web".*reserved/.test(line)), brokerLog.join('\n'));
    assert.equal((await http('GET', `${base}/api/history`, { headers: bearer('relais-web') })).status, 401);
  });

  it('audit - a command nested too deeply to encode again is recorded, raw and flagged, with its event; the HTTP API refuses such a body with 400', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const raw = mqtt.connect(broker.url!, { clientId: 'dora~rt', username: 'dora', password: tokens.get('dora')!, protocolVersion: 4, reconnectPeriod: 0 });
    await within(new Promise<void>((resolve, reject) => raw.once('connect', () => resolve()).once('error', reject)), 5000, 'the CONNACK');
    try {
      const token = `deep-${Date.now()}`;
      await raw.publishAsync('demo/deep/request/svc', `{"v":1,"type":"command","source":"dora","destination":"svc","token":"${token}","payload":${deep}}`, { qos: 1 });
      await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'command'));
      const command = (await rowsOf(router, token)).find((row) => row.kind === 'command')!;
      assert.equal(command.raw, true);
      assert.equal(command.truncated, true);
      assert.ok(command.data.startsWith('{"v":1,"type":"command","source":"dora"'), command.data.slice(0, 80));
      assert.ok(command.size > 200_000);
      const started = (await bus('root').request('relais/events/get', { limit: 5000 })) as { events: Array<{ type: string; data: { token?: string } }> };
      assert.ok(started.events.some((event) => event.type === 'request.started' && event.data.token === token), 'no request.started event');
      await raw.publishAsync('demo/deep/notification', `{"v":1,"type":"notification","source":"dora","destination":"*","payload":${deep}}`, { qos: 1 });
      await within(
        (async () => {
          for (;;) {
            const page = (await bus('root').request('relais/events/get', { limit: 5000 })) as { events: Array<{ type: string; data: { category?: string; raw?: boolean } }> };
            if (page.events.some((event) => event.type === 'notification' && event.data.category === 'demo/deep' && event.data.raw === true)) return;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        })(),
        10_000,
        'the raw notification event',
      );
    } finally {
      raw.end(true);
    }
    for (const [url, body] of [[`${base}/api/actions/demo/echo`, deep], [`${base}/api/core/action/command`, `[{"command":"true","extra":${deep}}]`]] as const) {
      // As an admin: the Gorgone route runs the agents' command action, which clients may not call.
      const refused = await http('POST', url, { body, headers: { ...bearer('root'), 'content-type': 'application/json' } });
      assert.equal(refused.status, 400, refused.text);
      assert.match(refused.text, /cannot be sent on the bus: it is nested too deeply/);
    }
  });
});
