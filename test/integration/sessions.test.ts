/**
 * Several sessions of one identity (protocol §2.1 `<identity>~<session>`, docs/security.md
 * "Sessions") on the embedded broker with security on and the default policy: each role's
 * sessions connect side by side without taking each other's place, each owns its responses and
 * presence, the policy's sessions.max is enforced at CONNECT and, lowered, on live connections.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { connect, type Bus } from '../../src/index.js';
import { brokerNoticeTopic } from '../../src/protocol/broker-notice.js';
import { DEFAULT_POLICY_DATA } from '../../src/security/default-policy.js';
import { parsePolicy, type Policy } from '../../src/security/policy.js';
import { testLogger, within } from '../testkit/index.js';
import { closed, inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

const PEOPLE: Array<[string, string[]]> = [
  ['ada', ['admin']],
  ['svc', ['service']],
  ['alice', ['client']],
  ['bob', ['client']],
  ['carol', ['client']],
  ['erin', ['client']],
  ['olga', ['observer']],
];

function policyWith(sessions: { max: number } | undefined, observerSessions?: { max: number }): Policy {
  const data = structuredClone(DEFAULT_POLICY_DATA) as Record<string, unknown> & { roles: Record<string, Record<string, unknown>> };
  if (sessions) data.sessions = sessions;
  if (observerSessions) data.roles.observer = { ...data.roles.observer, sessions: observerSessions };
  data.identities = { ...(data.identities as object), svc: { serves: ['demo/#'] } };
  return parsePolicy(data, 'test policy');
}

function command(source: string, token: string, payload: unknown = { n: 1 }): string {
  return JSON.stringify({ v: 1, type: 'command', source, destination: '*', token, payload });
}

/** The SUBACK code of one filter (0x80: refused). */
async function granted(client: MqttClient, filter: string): Promise<number> {
  const result = await client.subscribeAsync(filter, { qos: 1 }).then(
    (grants) => grants[0]!.qos,
    (error: Error & { packet?: { granted: number[] } }) => error.packet?.granted[0] ?? -1,
  );
  return result;
}

describe('sessions - several client ids of one identity, each role of the default policy', { timeout: 90_000 }, () => {
  let secure: SecureBroker;
  let current: Policy;
  const buses: Bus[] = [];

  before(async () => {
    current = policyWith(undefined); // the default: 8 sessions per identity
    secure = await startSecureBroker(PEOPLE, { policy: () => current });
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    await secure.close();
  });

  const open = async (identity: string, session?: string): Promise<Bus> => {
    const bus = await connect({
      id: session === undefined ? identity : `${identity}~${session}`,
      broker: secure.broker.url!,
      username: identity,
      password: secure.tokens.get(identity)!,
      logger: testLogger,
      reconnectDelay: 60_000,
    });
    buses.push(bus);
    return bus;
  };

  it('two sessions of a service and two of a client, beside each identity itself: all stay connected, each serves or calls and gets its own answers', async () => {
    const replaced: string[] = [];
    const served: string[] = [];
    const servers = [await open('svc'), await open('svc', 'a'), await open('svc', 'b')];
    for (const server of servers) {
      server.on('replaced', () => replaced.push(server.id));
      await server.handle('demo/echo', async (payload, ctx) => {
        served.push(server.id);
        return { echo: payload, by: server.id, for: ctx.source };
      });
    }
    const callers = [await open('alice'), await open('alice', 'tab1'), await open('alice', 'cli-7')];
    for (const caller of callers) caller.on('replaced', () => replaced.push(caller.id));
    for (const caller of callers) {
      for (const server of servers) {
        const answer = await caller.request<{ by: string; for: string }>('demo/echo', { from: caller.id }, { target: server.id, timeout: 10_000 });
        assert.equal(answer.by, server.id);
        assert.equal(answer.for, caller.id, 'the handler sees the session as the source');
      }
    }
    assert.deepEqual(replaced, [], 'no session took another connection of its identity');
    assert.equal(served.length, 9);
    for (const bus of [...servers, ...callers]) assert.equal(bus.connected, true, `${bus.id} still connected`);
  });

  it("a session's command the policy denies is answered by the broker on the session's own response topic, at once (protocol §5.3)", async () => {
    const tab = await secure.raw('carol', { clientId: 'carol~denied' });
    const box = inbox(tab);
    assert.equal(await granted(tab, 'system/disks/list_disks/response/carol~denied'), 1);
    await tab.publishAsync('system/disks/list_disks/request', command('carol~denied', 'denied-1'), { qos: 1 });
    const reply = await box.next('system/disks/list_disks/response/carol~denied', 10_000);
    assert.equal(reply.token, 'denied-1');
    assert.equal(reply.code, 4);
    assert.match(JSON.stringify(reply.error), /restricted-actions/);
  });

  it('admin and observer sessions: an admin session reads everything (#), an observer session reads notifications; neither is refused', async () => {
    const admin = await secure.raw('ada', { clientId: 'ada~console' });
    const observer = await secure.raw('olga', { clientId: 'olga~web-1' });
    const observerLane = await secure.raw('olga', { clientId: 'olga~web-1~rt' });
    assert.equal(await granted(admin, '#'), 1);
    assert.equal(await granted(observer, 'demo/+/notification'), 1);
    assert.equal(await granted(observerLane, 'demo/+/notification'), 1, "a session's lane is the session");
    const box = inbox(observer);
    const alice = await secure.raw('alice', { clientId: 'alice~n' });
    await alice.publishAsync('demo/door/notification', JSON.stringify({ v: 1, type: 'notification', source: 'alice~n', destination: '*', payload: 'open' }), { qos: 1 });
    assert.equal((await box.next('demo/door/notification')).payload, 'open');
  });

  it("hostile - alice forging bob's session, or ids outside the grammar, is refused with return code 2 and a log line", async () => {
    for (const clientId of ['bob~x', 'bob', 'alice~a~b', 'alice~', 'alice~has.dot', `alice~${'s'.repeat(33)}`, 'alice~rt~rt']) {
      assert.equal(await secure.refusedWith('alice', { clientId }), 2, clientId);
    }
    await secure.logged(/^refused CONNECT of identity "alice" \(client id "bob~x"\): the client id must be the identity, alice~<session> or either's ~rt$/);
  });

  it("hostile - a session cannot read another session's responses, nor its identity's, nor publish their presence or speak as them", async () => {
    const tab2 = await secure.raw('carol', { clientId: 'carol~tab2' });
    assert.equal(await granted(tab2, 'demo/echo/response/carol~tab2'), 1, 'its own');
    assert.equal(await granted(tab2, 'demo/echo/response/carol~tab1'), 128, "another session's");
    assert.equal(await granted(tab2, 'demo/echo/response/carol'), 128, "the identity's own connection's");
    assert.equal(await granted(tab2, 'demo/echo/response/+'), 128);
    const lane = await secure.raw('carol', { clientId: 'carol~tab2~rt' });
    assert.equal(await granted(lane, 'demo/echo/response/carol~tab2'), 1, "the session's lane reads the session's");
    assert.equal(await granted(lane, 'demo/echo/response/carol~tab1'), 128);
    // A real answer to tab1 is not delivered to tab2 even through a filter it holds.
    const tab1 = await secure.raw('carol', { clientId: 'carol~tab1' });
    const box1 = inbox(tab1);
    const box2 = inbox(tab2);
    await tab1.subscribeAsync('demo/echo/response/carol~tab1', { qos: 1 });
    const svc = await secure.raw('svc');
    await svc.publishAsync('demo/echo/response/carol~tab1', JSON.stringify({ v: 1, type: 'final', source: 'svc', destination: 'carol~tab1', token: 'k1', payload: 'for tab1' }), { qos: 1 });
    assert.equal((await box1.next('demo/echo/response/carol~tab1')).payload, 'for tab1');
    assert.deepEqual(box2.seen.filter(({ topic }) => topic.includes('carol~tab1')), []);
    // Presence and source are the session's own.
    await tab2.publishAsync('relais/presence/carol~tab1', JSON.stringify({ v: 1, type: 'notification', source: 'carol~tab2', destination: '*', payload: { status: 'dead' } }), { qos: 1 });
    await secure.logged(/^denied publish on "relais\/presence\/carol~tab1" for identity carol \(client id carol~tab2\): builtin:others-presence$/);
    await tab2.publishAsync('demo/echo/request', command('carol~tab1', 'forged-1'), { qos: 1 });
    await secure.logged(/^denied publish on "demo\/echo\/request" for identity carol \(client id carol~tab2\): builtin:source \(the envelope says "carol~tab1"\)$/);
    await tab2.publishAsync('demo/echo/request', command('carol', 'forged-2'), { qos: 1 });
    await secure.logged(/builtin:source \(the envelope says "carol"\)$/);
  });

  it('the limit - the (max+1)th session of an identity is refused with return code 2 and a log line naming sessions.max; a take-over or a lane of a held session is not one more', async () => {
    current = policyWith({ max: 3 }, { max: 1 });
    const held = [await secure.raw('bob', { clientId: 'bob~1' }), await secure.raw('bob', { clientId: 'bob~2' }), await secure.raw('bob', { clientId: 'bob~3' })];
    await secure.raw('bob'); // the identity itself is not a session
    assert.equal(await secure.refusedWith('bob', { clientId: 'bob~4' }), 2);
    await secure.logged(/^refused CONNECT of identity "bob" \(client id "bob~4"\): bob already has 3 sessions open, the policy's limit \(sessions\.max 3\)$/);
    await secure.raw('bob', { clientId: 'bob~2~rt' });
    const again = await secure.raw('bob', { clientId: 'bob~3' }); // takes bob~3's place
    await closed(held[2]!);
    assert.equal(again.connected, true);
    // Another identity is counted apart; a role's own sessions.max replaces the policy's for its holders.
    await secure.raw('erin', { clientId: 'erin~other' });
    assert.equal(await secure.refusedWith('olga', { clientId: 'olga~web-2' }), 2, "olga holds olga~web-1, the observers' one session");
    await secure.logged(/^refused CONNECT of identity "olga" \(client id "olga~web-2"\): olga already has 1 sessions open, the policy's limit \(sessions\.max 1\)$/);
    // A session that leaves makes room.
    await held[0]!.endAsync();
    await within(
      (async () => {
        for (;;) {
          const code = await secure.raw('bob', { clientId: 'bob~5' }).then(
            () => 0,
            (error: Error & { code?: number }) => error.code ?? -1,
          );
          if (code === 0) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      10_000,
      'bob~5 admitted once bob~1 left',
    );
  });

  it('tightening - a policy with sessions off disconnects the live sessions (and their lanes) within a second, telling them why; the identities themselves stay; sessions are then refused', async () => {
    const sessionOf = await secure.raw('erin', { clientId: 'erin~keep' });
    const laneOf = await secure.raw('erin', { clientId: 'erin~keep~rt' });
    const itself = await secure.raw('erin');
    const notice = within(
      new Promise<Record<string, unknown>>((resolve) => {
        sessionOf.on('message', (topic, payload) => {
          if (topic === brokerNoticeTopic('erin~keep')) resolve(JSON.parse(payload.toString()) as Record<string, unknown>);
        });
      }),
      5000,
      'the notice to erin~keep',
    );
    await sessionOf.subscribeAsync(brokerNoticeTopic('erin~keep'), { qos: 0 }).catch(() => {});
    const changedAt = Date.now();
    current = policyWith({ max: 0 });
    await Promise.all([closed(sessionOf, 5000), closed(laneOf, 5000)]);
    const tookMs = Date.now() - changedAt;
    assert.ok(tookMs < 3000, `cut ${tookMs} ms after the change`);
    assert.deepEqual((await notice).payload, { notice: 'disconnected', reason: 'sessions over the limit' });
    await secure.logged(/^disconnected identity erin \(client id erin~keep\): sessions over the limit$/);
    assert.equal(itself.connected, true, 'the identity itself is no session');
    assert.equal(await secure.refusedWith('erin', { clientId: 'erin~keep' }), 2);
    await secure.logged(/^refused CONNECT of identity "erin" \(client id "erin~keep"\): sessions are off for erin in the policy \(sessions\.max 0\)/);
    current = policyWith({ max: 3 });
  });
});
