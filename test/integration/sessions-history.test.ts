/**
 * The router with sessions (protocol §2.1, docs/security.md "Sessions"): a session's requests
 * are its identity's, so another session of the same identity reads their rows, puts on them
 * and kills them, over MQTT and (the identity itself) over HTTP; another identity's session
 * does none of it. Security on, the default policy, the router and the web server in this
 * process, every client over real sockets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, NotAuthorizedError, type Bus, type HistoryPage } from '../../src/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/index.js';
import { startRouter, type Router } from '../../src/router/index.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { IdentityStore } from '../../src/security/identities.js';
import { loadPolicy } from '../../src/security/policy-file.js';
import { startWebServer, type WebServer } from '../../src/web/server.js';
import { rowsOf, untilRecorded } from '../router/router-contract.js';
import { testLogger } from '../testkit/index.js';
import { http, tempDir } from '../web/web-kit.js';

const ROLES = { alice: 'client', bob: 'client', svc: 'service', 'relais-web': 'admin' } as const;
type Name = keyof typeof ROLES;

describe('sessions and the history: one identity, one principal', { timeout: 90_000 }, () => {
  let dir: string;
  let broker: EmbeddedBroker;
  let router: Router;
  let web: WebServer;
  let base: string;
  const tokens = new Map<Name, string>();
  const buses = new Map<string, Bus>();
  const holds = new Map<string, () => void>();
  const bus = (id: string) => buses.get(id)!;
  const get = (id: string, query: Record<string, unknown>) => bus(id).request('relais/history/get', query) as Promise<HistoryPage>;

  before(async () => {
    dir = tempDir('sessions-history');
    const store = new IdentityStore(path.join(dir, 'identities.json'));
    for (const [name, role] of Object.entries(ROLES)) tokens.set(name as Name, (await store.add(name, [role])).token);
    const policyFile = path.join(dir, 'policy.json');
    fs.writeFileSync(policyFile, JSON.stringify({ ...DEFAULT_POLICY_DATA, identities: { ...DEFAULT_POLICY_DATA.identities, svc: { serves: ['demo/#'] } } }));
    const security = { identities: store, policy: loadPolicy(policyFile), inProcessOnly: ['relais-web'] };
    broker = await startEmbeddedBroker({ port: 0, security, log: () => {} });
    router = await startRouter({ stream: () => broker.connectInProcess(), database: path.join(dir, 'history.db'), logger: testLogger, access: { identities: store.file, policy: policyFile, delegates: ['relais-web'] } });
    for (const id of ['alice~tab1', 'alice~cli-1', 'bob~tab1', 'svc~worker']) {
      const identity = id.split('~')[0] as Name;
      buses.set(id, await connect({ id, broker: broker.url!, username: identity, password: tokens.get(identity)!, realtimeLane: false, logger: testLogger }));
    }
    await bus('svc~worker').handle('demo/echo', (payload) => ({ echo: payload }));
    await bus('svc~worker').handle('demo/hold', async (_payload, ctx) => {
      ctx.progress(0.5, { holding: true });
      await new Promise<void>((resolve, reject) => {
        holds.set(ctx.token, resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      });
      return { done: true };
    });
    for (const id of ['alice~tab1', 'alice~cli-1', 'bob~tab1']) await bus(id).waitForHandler('demo/hold');
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

  /** Sends demo/echo as `id`; resolves its token once the router recorded its final. */
  const echoAs = async (id: string, payload: unknown): Promise<string> => {
    let token = '';
    for await (const step of bus(id).call('demo/echo', payload)) token = step.token ?? token;
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'final'));
    return token;
  };

  it("history - a session reads the rows of its identity's other sessions, over MQTT and (as the identity) over HTTP; another identity's session does not", async () => {
    const token = await echoAs('alice~tab1', { secret: 'tab1-only' });
    const command = (await rowsOf(router, token)).find((row) => row.kind === 'command')!;
    assert.equal(command.source, 'alice~tab1', 'the history shows the client id');
    const fromOtherSession = (await get('alice~cli-1', { token })).rows;
    assert.ok(fromOtherSession.some((row) => row.kind === 'command' && row.source === 'alice~tab1'), 'alice~cli-1 reads alice~tab1\'s request');
    assert.ok(fromOtherSession.some((row) => row.kind === 'final'), "and the handler session's answer to it");
    assert.deepEqual((await get('bob~tab1', { token })).rows, [], "bob's session reads none of it");
    assert.deepEqual((await get('bob~tab1', { source: 'alice~tab1' })).rows, []);
    const overHttp = await http('GET', `${base}/api/history/${token}`, { headers: { authorization: `Bearer alice:${tokens.get('alice')}` } });
    assert.equal(overHttp.status, 200, overHttp.text);
    assert.equal((await http('GET', `${base}/api/history/${token}`, { headers: { authorization: `Bearer bob:${tokens.get('bob')}` } })).status, 404);
  });

  it("kill and put - a session kills and puts on a request another session of its identity sent; another identity's session may not", async () => {
    const sent = bus('alice~tab1').request('demo/hold', {}, { timeout: 30_000 });
    sent.catch(() => {});
    let token = '';
    await untilRecorded(router, async () => {
      const rows = (await get('alice~tab1', { action: 'demo/hold', kind: 'progress', limit: 100 })).rows;
      token = rows.at(-1)?.token ?? '';
      return token !== '';
    });
    await assert.rejects(bus('bob~tab1').request('relais/requests/kill', { token }), NotAuthorizedError);
    await assert.rejects(bus('bob~tab1').request('relais/history/put', { token, data: 'bob was here' }), NotAuthorizedError);
    const killed = (await bus('alice~cli-1').request('relais/requests/kill', { token })) as { requester: string; by: string; killed: boolean };
    assert.deepEqual([killed.requester, killed.by, killed.killed], ['alice~tab1', 'alice~cli-1', true]);
    await assert.rejects(sent);
    await bus('alice~cli-1').request('relais/history/put', { token, data: 'note from the CLI session' });
    await untilRecorded(router, async () => (await rowsOf(router, token)).some((row) => row.kind === 'error'));
    const rows = await rowsOf(router, token);
    assert.ok(rows.some((row) => row.kind === 'put' && row.source === 'alice~cli-1'));
    assert.ok(!rows.some((row) => row.data.includes('bob was here')));
  });
});
