import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { stringify as stringifyYaml } from 'yaml';
import { loadPolicy } from '../../src/security/policy-file.js';
import { decide, decideByScan, DEFAULT_MAX_SESSIONS, GRANTS, identityOf, parsePolicy, PolicyError, sessionLimit, type Operation, type Policy, type Subject } from '../../src/security/policy.js';
import { DEFAULT_POLICY_DATA, defaultPolicy } from '../../src/security/default-policy.js';

// The default policy, with what its services serve (the operator's `relais identity add --serves`).
const SERVES: Record<string, string[]> = { svc: ['demo/#'], agent: ['system/#'], wide: ['#'] };
const policy = parsePolicy({ ...DEFAULT_POLICY_DATA, identities: { ...DEFAULT_POLICY_DATA.identities, ...Object.fromEntries(Object.entries(SERVES).map(([id, serves]) => [id, { serves }])) } });

// Identity classes: `self` is the client's own id in the topics, OTHER someone else's.
const SUBJECTS: Record<string, Subject> = {
  client: { identity: 'alice', roles: ['client'] },
  'client-rt': { identity: 'alice~rt', roles: ['client'] },
  service: { identity: 'svc', roles: ['service'] }, // serves demo/#
  'service-serving-nothing': { identity: 'idle', roles: ['service'] },
  'service-serving-all': { identity: 'wide', roles: ['service'] }, // serves '#'
  agent: { identity: 'agent', roles: ['service'] }, // serves system/#
  'agent-user': { identity: 'ops', roles: ['client', 'agent-user'] },
  router: { identity: 'relais-router' }, // its role comes from the policy's identities
  admin: { identity: 'root', roles: ['admin'] },
  observer: { identity: 'eve', roles: ['observer'] },
  anonymous: { identity: undefined, roles: ['client'] },
};
const OTHER = 'zed';

// [subject, operation, topic (SELF = the subject's identity), allow, rule that decided]
type Row = [keyof typeof SUBJECTS, Operation, string, boolean, string];
const r = (i: number) => `rules[${i}]`;
const ROWS: Row[] = [
  // own response / other's response
  ['client', 'subscribe', 'demo/install/response/SELF', true, r(2)],
  ['client', 'subscribe', 'demo/install/response/OTHER', false, 'builtin:others-responses'],
  ['client', 'subscribe', 'demo/install/response/+', false, 'builtin:others-responses'],
  ['client', 'subscribe', 'demo/+/+', false, 'builtin:others-responses'],
  ['client-rt', 'subscribe', 'demo/install/response/SELF', true, r(2)],
  ['client-rt', 'subscribe', 'demo/install/response/alice~rt', false, 'default-deny'],
  ['service', 'subscribe', 'demo/install/response/OTHER', false, 'builtin:others-responses'],
  ['router', 'subscribe', 'demo/install/response/OTHER', true, r(7)],
  ['admin', 'subscribe', 'demo/install/response/OTHER', true, r(6)],
  ['observer', 'subscribe', 'demo/install/response/SELF', false, 'default-deny'],
  ['observer', 'subscribe', 'demo/install/response/OTHER', false, 'builtin:others-responses'],
  ['anonymous', 'subscribe', 'demo/install/response/SELF', false, 'builtin:anonymous'],
  // requests: to self, to another, to any handler
  ['client', 'subscribe', 'demo/install/request/SELF', false, 'default-deny'],
  ['client', 'subscribe', 'demo/install/request/OTHER', false, 'builtin:others-requests'],
  ['client', 'publish', 'demo/install/request/OTHER', true, r(2)],
  ['client', 'publish', 'demo/install/request', true, r(2)],
  ['service', 'subscribe', 'demo/install/request/SELF', true, r(4)],
  ['service', 'subscribe', 'demo/install/request', true, r(4)],
  ['service', 'subscribe', 'demo/install/request/OTHER', false, 'builtin:others-requests'],
  ['service', 'subscribe', 'demo/install/request/+', false, 'builtin:others-requests'],
  ['service', 'publish', 'demo/install/response/OTHER', true, r(4)],
  // a service serves what its identity lists in serves, and nothing else
  ['service', 'subscribe', 'demo/request', true, r(4)],
  ['service', 'subscribe', 'demo/a/b/c/request/SELF', true, r(4)],
  ['service', 'subscribe', 'demo/install/cancel', true, r(4)],
  ['service', 'subscribe', 'other/install/request', false, 'default-deny'],
  ['service', 'subscribe', 'other/install/request/SELF', false, 'default-deny'],
  ['service', 'subscribe', 'other/install/cancel', false, 'default-deny'],
  ['service', 'publish', 'other/install/response/OTHER', false, 'default-deny'],
  ['service', 'publish', 'other/install/request/OTHER', true, r(2)],
  ['service-serving-nothing', 'subscribe', 'demo/install/request', false, 'default-deny'],
  ['service-serving-nothing', 'subscribe', 'demo/install/request/SELF', false, 'default-deny'],
  ['service-serving-nothing', 'publish', 'demo/install/response/OTHER', false, 'default-deny'],
  ['service-serving-all', 'subscribe', 'billing/invoice/request', true, r(4)],
  ['service-serving-all', 'subscribe', 'system/disks/list_disks/request', false, 'builtin:restricted-actions'],
  ['service-serving-all', 'publish', 'system/disks/list_disks/response/OTHER', false, 'builtin:restricted-actions'],
  // the agents' actions (restricted root system/): called by admins and agent users, served by what serves them
  ['client', 'publish', 'system/disks/remove_file/request/OTHER', false, 'builtin:restricted-actions'],
  ['client', 'publish', 'system/command/run/request', false, 'builtin:restricted-actions'],
  ['client', 'publish', 'system/command/run/cancel', false, 'builtin:restricted-actions'],
  ['client', 'subscribe', 'system/command/run/response/SELF', true, r(2)],
  ['service', 'publish', 'system/command/run/request/OTHER', false, 'builtin:restricted-actions'],
  ['service', 'subscribe', 'system/disks/list_disks/request', false, 'default-deny'],
  ['observer', 'publish', 'system/command/run/request/OTHER', false, 'default-deny'],
  ['admin', 'publish', 'system/command/run/request/OTHER', true, r(2)],
  ['agent-user', 'publish', 'system/command/run/request/OTHER', true, r(10)],
  ['agent-user', 'publish', 'system/command/run/cancel', true, r(10)],
  ['agent-user', 'subscribe', 'system/command/run/response/SELF', true, r(2)],
  ['agent-user', 'publish', 'system/command/run/response/OTHER', false, 'default-deny'],
  ['agent', 'subscribe', 'system/disks/list_disks/request/SELF', true, r(4)],
  ['agent', 'subscribe', 'system/disks/list_disks/request', true, r(4)],
  ['agent', 'publish', 'system/disks/list_disks/response/OTHER', true, r(4)],
  ['agent', 'publish', 'system/misc/benchmark/ping/request/SELF', true, r(4)],
  ['agent', 'publish', 'system/misc/benchmark/ping/request/OTHER', false, 'builtin:restricted-actions'],
  ['agent', 'publish', 'system/disk/new_file/notification', true, r(2)],
  ['router', 'publish', 'system/command/run/cancel', true, r(7)],
  ['router', 'subscribe', 'system/command/run/request/OTHER', true, r(7)],
  ['client', 'publish', 'demo/install/response/OTHER', false, 'default-deny'],
  ['router', 'subscribe', 'demo/install/request/OTHER', true, r(7)],
  ['observer', 'publish', 'demo/install/request', false, 'default-deny'],
  ['anonymous', 'publish', 'demo/install/request', false, 'builtin:anonymous'],
  // presence of self / of another
  ['client', 'publish', 'relais/presence/SELF', true, r(0)],
  ['client-rt', 'publish', 'relais/presence/SELF', true, r(0)],
  ['client', 'publish', 'relais/presence/OTHER', false, 'builtin:others-presence'],
  ['service', 'publish', 'relais/presence/OTHER', false, 'builtin:others-presence'],
  ['router', 'publish', 'relais/presence/OTHER', false, 'builtin:others-presence'],
  ['admin', 'publish', 'relais/presence/OTHER', false, 'builtin:others-presence'],
  ['observer', 'publish', 'relais/presence/SELF', true, r(0)],
  ['observer', 'subscribe', 'relais/presence/+', true, r(0)],
  ['anonymous', 'publish', 'relais/presence/SELF', false, 'builtin:anonymous'],
  // notifications
  ['client', 'publish', 'system/disk/new_file/notification', true, r(2)],
  ['client', 'subscribe', 'system/disk/new_file/notification', true, r(5)],
  ['observer', 'subscribe', 'system/disk/new_file/notification', true, r(5)],
  ['observer', 'subscribe', 'relais/events/notification', true, r(5)],
  ['observer', 'publish', 'system/disk/new_file/notification', false, 'default-deny'],
  ['observer', 'subscribe', '+/+/+/notification', false, 'builtin:wildcard-subscription'],
  ['router', 'subscribe', '+/+/+/notification', true, r(7)],
  // '#'
  ['client', 'subscribe', '#', false, 'builtin:wildcard-subscription'],
  ['client', 'subscribe', 'demo/#', false, 'builtin:wildcard-subscription'],
  ['observer', 'subscribe', '#', false, 'builtin:wildcard-subscription'],
  ['service', 'subscribe', '#', false, 'builtin:wildcard-subscription'],
  ['router', 'subscribe', '#', true, r(7)],
  ['admin', 'subscribe', '#', true, r(6)],
  ['anonymous', 'subscribe', '#', false, 'builtin:anonymous'],
  // the router's actions (relais/...)
  ['client', 'publish', 'relais/history/get/request', true, r(3)],
  ['client', 'subscribe', 'relais/history/get/response/SELF', true, r(2)],
  ['client', 'publish', 'relais/requests/kill/request', true, r(1)],
  ['client', 'publish', 'relais/broker/stats/get/request', false, 'builtin:relais-actions'],
  ['observer', 'publish', 'relais/requests/kill/request', false, 'default-deny'],
  ['client', 'publish', 'relais/events/notification', false, 'builtin:relais-actions'],
  ['service-serving-all', 'subscribe', 'relais/history/get/request', false, 'builtin:relais-actions'],
  ['service-serving-all', 'publish', 'relais/history/get/response/OTHER', false, 'builtin:relais-actions'],
  ['service', 'subscribe', 'relais/history/get/request', false, 'default-deny'],
  ['admin', 'publish', 'relais/requests/kill/request', true, r(1)],
  ['router', 'subscribe', 'relais/history/get/request', true, r(7)],
  ['router', 'publish', 'relais/history/get/response/OTHER', true, r(7)],
  ['router', 'publish', 'relais/events/notification', true, r(7)],
  ['router', 'publish', 'demo/install/cancel', true, r(7)],
  ['router', 'publish', 'demo/install/request', false, 'default-deny'],
  // what the library sends: targeted at the router it found (protocol §4.6)
  ['client', 'publish', 'relais/history/get/request/relais-router', true, r(3)],
  ['client', 'publish', 'relais/history/follow/request/relais-router', true, r(3)],
  ['client', 'publish', 'relais/metrics/get/request/relais-router', true, r(3)],
  ['service', 'publish', 'relais/clients/list/get/request/relais-router', true, r(3)],
  ['client', 'publish', 'relais/requests/kill/request/relais-router', true, r(1)],
  // observers ask the router what they may read, but write nothing to the history
  ['observer', 'publish', 'relais/history/get/request', true, r(9)],
  ['observer', 'publish', 'relais/history/get/request/relais-router', true, r(9)],
  ['observer', 'publish', 'relais/events/get/request/relais-router', true, r(9)],
  ['observer', 'subscribe', 'relais/history/get/response/SELF', true, r(9)],
  ['observer', 'subscribe', 'relais/history/get/response/OTHER', false, 'builtin:others-responses'],
  ['observer', 'publish', 'relais/history/put/request', false, 'default-deny'],
  ['observer', 'publish', 'relais/history/put/request/relais-router', false, 'default-deny'],
  // the logs every library client serves, targeted at itself (protocol §11.4)
  ['client', 'subscribe', 'relais/logs/get/request/SELF', true, r(0)],
  ['client', 'subscribe', 'relais/logs/get/request/OTHER', false, 'builtin:others-requests'],
  // bad topics
  ['router', 'publish', 'demo/+/request', false, 'builtin:invalid-topic'],
  ['router', 'subscribe', 'demo/#/x', false, 'builtin:invalid-topic'],
];

describe('policy - decide() with the default policy', () => {
  for (const [who, operation, template, allow, rule] of ROWS) {
    const subject = SUBJECTS[who]!;
    const self = subject.identity ? identityOf(subject.identity) : 'nobody';
    const topic = template.replaceAll('SELF', self).replaceAll('OTHER', OTHER);
    it(`decide - ${who} ${operation} ${topic}: ${allow ? 'allow' : 'deny'} by ${rule}`, () => {
      const decision = decide(policy, subject, operation, topic);
      assert.deepEqual({ allow: decision.allow, rule: decision.rule.split(' ')[0] }, { allow, rule }, JSON.stringify(decision));
    });
  }

  it('decide - names the file rule with its name', () => {
    assert.equal(decide(policy, SUBJECTS.client!, 'publish', 'relais/presence/alice').rule, `rules[0] ${JSON.stringify(DEFAULT_POLICY_DATA.rules[0]!.name)}`);
  });
});

describe('policy - placeholders', () => {
  const custom = (rules: unknown[], extra: Record<string, unknown> = {}): Policy =>
    parsePolicy({ version: 1, roles: { ops: {}, dev: {} }, rules, ...extra });

  it('placeholders - ${id} is the identity, without the real-time lane suffix', () => {
    const p = custom([{ publish: ['home/${id}/state'] }]);
    assert.equal(decide(p, { identity: 'lamp' }, 'publish', 'home/lamp/state').allow, true);
    assert.equal(decide(p, { identity: 'lamp~rt' }, 'publish', 'home/lamp/state').allow, true);
    assert.equal(decide(p, { identity: 'lamp' }, 'publish', 'home/fan/state').rule, 'default-deny');
  });

  it('placeholders - ${role} is each of the subject\'s roles', () => {
    const p = custom([{ name: 'team boards', roles: ['ops', 'dev'], subscribe: ['boards/${role}/notification'] }]);
    assert.deepEqual(decide(p, { identity: 'a', roles: ['dev'] }, 'subscribe', 'boards/dev/notification'), { allow: true, rule: 'rules[0] "team boards"' });
    assert.equal(decide(p, { identity: 'a', roles: ['dev'] }, 'subscribe', 'boards/ops/notification').allow, false);
  });

  it('placeholders - ${path} is one or more whole levels', () => {
    const p = custom([{ publish: ['${path}/request'] }]);
    assert.equal(decide(p, { identity: 'a' }, 'publish', 'x/request').allow, true);
    assert.equal(decide(p, { identity: 'a' }, 'publish', 'system/disks/list_disks/request').allow, true);
    assert.equal(decide(p, { identity: 'a' }, 'publish', 'request').allow, false);
  });

  it('rules - a subscription is allowed only when a pattern covers the whole filter', () => {
    const p = custom([{ identities: ['a'], subscribe: ['sensors/+/notification'] }], { roles: {} });
    assert.equal(decide(p, { identity: 'a' }, 'subscribe', 'sensors/kitchen/notification').allow, true);
    assert.equal(decide(p, { identity: 'a' }, 'subscribe', 'sensors/kitchen/x/notification').allow, false);
    assert.equal(decide(p, { identity: 'b' }, 'subscribe', 'sensors/kitchen/notification').allow, false);
  });

  it('rules - grants on an identity widen the built-ins for it alone', () => {
    const p = custom([{ subscribe: ['#'] }], { identities: { auditor: { grants: ['wildcards', 'responses', 'requests'] } } });
    assert.equal(decide(p, { identity: 'auditor' }, 'subscribe', 'demo/#').allow, true);
    assert.equal(decide(p, { identity: 'auditor' }, 'subscribe', 'demo/install/response/+').allow, true);
    assert.equal(decide(p, { identity: 'other' }, 'subscribe', 'demo/install/response/+').rule, 'builtin:others-responses');
  });

  it('placeholders - ${serves} is each action the identity serves: + one level, a last # any below', () => {
    const p = custom([{ subscribe: ['${serves}/request'] }], { identities: { svc: { serves: ['shop/+/orders', 'billing/#'] }, idle: {} } });
    const allows = (identity: string, topic: string) => decide(p, { identity }, 'subscribe', topic).allow;
    assert.equal(allows('svc', 'shop/eu/orders/request'), true);
    assert.equal(allows('svc', 'shop/eu/x/orders/request'), false);
    assert.equal(allows('svc', 'billing/request'), true);
    assert.equal(allows('svc', 'billing/a/b/request'), true);
    assert.equal(allows('svc', 'billingx/request'), false);
    assert.equal(allows('idle', 'billing/request'), false, 'an identity that serves nothing');
    assert.equal(allows('stranger', 'billing/request'), false, 'an identity the policy does not list');
  });

  it('rules - a restricted root is reached only by a pattern that names it, or the grant', () => {
    const p = custom([{ publish: ['${path}/request'] }, { identities: ['ops'], publish: ['vault/${path}/request'] }], { restricted: { vault: 'secrets' }, identities: { root: { grants: ['restricted'] } } });
    assert.deepEqual(decide(p, { identity: 'a' }, 'publish', 'vault/open/request'), { allow: false, rule: 'builtin:restricted-actions' });
    assert.deepEqual(decide(p, { identity: 'a' }, 'publish', 'vaults/open/request'), { allow: true, rule: 'rules[0]' });
    assert.deepEqual(decide(p, { identity: 'ops' }, 'publish', 'vault/open/request'), { allow: true, rule: 'rules[1]' });
    assert.deepEqual(decide(p, { identity: 'root' }, 'publish', 'vault/open/request'), { allow: true, rule: 'rules[0]' });
  });

  it('rules - an empty policy denies everything', () => {
    const p = parsePolicy({ version: 1, roles: {}, rules: [] });
    assert.deepEqual(decide(p, { identity: 'a' }, 'publish', 'relais/presence/a'), { allow: false, rule: 'default-deny' });
  });
});

describe('policy - the compiled index decides as the scan of every rule', () => {
  // Small alphabets, so that random patterns, subjects and topics meet often.
  const WORDS = ['a', 'b', 'relais', 'system', 'presence', 'request', 'response', 'cancel', 'notification', 'alice', 'r1', ''];
  const ROLES = ['r1', 'r2', 'relais', 'a'];
  const IDENTITIES = ['alice', 'bob', 'relais', 'a', 'r1'];
  const patternLevel = fc.oneof(fc.constantFrom(...WORDS), fc.constantFrom('+', '${id}', '${role}', '${path}', '${serves}'));
  /** What an identity serves: an action pattern, a last `#` standing for any levels below (none included). */
  const served = fc
    .tuple(fc.array(fc.constantFrom('a', 'b', 'system', 'relais', '+'), { minLength: 0, maxLength: 3 }), fc.boolean())
    .map(([levels, hash]) => [...levels, ...(hash || levels.length === 0 ? ['#'] : [])].join('/'));
  const pattern = fc
    .tuple(fc.array(patternLevel, { minLength: 1, maxLength: 5 }), fc.boolean())
    .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'));
  const subset = <T>(values: readonly T[]) => fc.subarray([...values]);
  const rule = fc.record(
    {
      roles: subset(ROLES),
      identities: subset(IDENTITIES),
      publish: fc.array(pattern, { maxLength: 3 }),
      subscribe: fc.array(pattern, { maxLength: 3 }),
      name: fc.constantFrom('one', 'two'),
    },
    { requiredKeys: ['publish', 'subscribe'] },
  );
  const policyData = fc.record({
    grants: fc.dictionary(fc.constantFrom(...ROLES), subset(GRANTS)),
    identityGrants: fc.dictionary(fc.constantFrom(...IDENTITIES), fc.record({ roles: subset(ROLES), grants: subset(GRANTS), serves: fc.array(served, { maxLength: 2 }) })),
    restricted: fc.constantFrom(['system'], ['system', 'a'], []),
    rules: fc.array(rule, { minLength: 1, maxLength: 14 }),
  });
  const subject = fc.record({ identity: fc.constantFrom(...IDENTITIES, 'alice~rt', 'zed', undefined), roles: subset(ROLES) });
  // Half the topics under a guarded root, so that the built-in guards are met often.
  const topic = fc
    .tuple(fc.oneof(fc.constantFrom('system', 'relais', 'a'), fc.constantFrom(...WORDS), fc.constantFrom('+', 'zed')), fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.constantFrom('+', 'zed')), { minLength: 0, maxLength: 6 }), fc.boolean())
    .map(([first, levels, hash]) => [first, ...levels, ...(hash ? ['#'] : [])].join('/'));

  const build = (data: { grants: Record<string, string[]>; identityGrants: Record<string, { roles: string[]; grants: string[]; serves: string[] }>; restricted: readonly string[]; rules: Array<Record<string, unknown>> }): Policy | undefined => {
    try {
      const rules = data.rules.filter((r) => (r.publish as string[]).length + (r.subscribe as string[]).length > 0);
      const restricted = Object.fromEntries(data.restricted.map((root) => [root, 'test']));
      return parsePolicy({ version: 1, roles: Object.fromEntries(ROLES.map((role) => [role, { grants: data.grants[role] ?? [] }])), identities: data.identityGrants, restricted, rules });
    } catch {
      return undefined; // a pattern the schema refuses: not a policy
    }
  };

  it('index - random policies, subjects and topics: the same decision and rule as the scan, both operations', () => {
    let compared = 0;
    let allowed = 0;
    let system = 0;
    let restrictedGuard = 0;
    let byServes = 0;
    fc.assert(
      fc.property(policyData, fc.array(fc.tuple(subject, topic), { minLength: 1, maxLength: 20 }), (data, cases) => {
        const p = build(data);
        fc.pre(p !== undefined);
        for (const [who, t] of cases) {
          for (const operation of ['publish', 'subscribe'] as const) {
            const expected = decideByScan(p!, who, operation, t);
            assert.deepEqual(decide(p!, who, operation, t), expected, `${operation} ${t} for ${JSON.stringify(who)}`);
            if (expected.allow) allowed++;
            else if (expected.rule === "builtin:relais-actions") system++;
            else if (expected.rule === 'builtin:restricted-actions') restrictedGuard++;
            if (expected.allow && p!.rules[Number(/rules\[(\d+)\]/.exec(expected.rule)?.[1])]?.[operation].some((pattern) => pattern.includes('${serves}'))) byServes++;
            compared++;
          }
        }
      }),
      { numRuns: 3000, seed: Number(process.env.POLICY_SEED ?? 20261214) },
    );
    assert.ok(compared > 20_000, `only ${compared} decisions compared`);
    // The generators must reach allows and the relais/ guard, or the comparison says little.
    assert.ok(allowed > 1000 && system > 10 && restrictedGuard > 10 && byServes > 50, `allowed ${allowed} (${byServes} by a \${serves} pattern), builtin:relais-actions ${system}, builtin:restricted-actions ${restrictedGuard}`);
  });

  it('index - the default policy: the same decision as the scan for every row above, and every role on a range of topics', () => {
    const roles = ['client', 'service', 'observer', 'admin', 'router'];
    for (const role of roles) {
      for (const t of ['demo/x/request', 'demo/x/request/bob', 'demo/x/response/alice', 'demo/x/response/+', 'relais/history/get/request', 'relais/presence/alice', 'relais/presence/+', 'a/b/c/notification', '#', 'relais/#', 'relais/requests/kill/request', 'relais/logs/get/request/alice']) {
        for (const operation of ['publish', 'subscribe'] as const) {
          const who = { identity: 'alice', roles: [role] };
          assert.deepEqual(decide(policy, who, operation, t), decideByScan(policy, who, operation, t), `${role} ${operation} ${t}`);
        }
      }
    }
  });

  it('index - a policy of 50,000 rules: the decisions equal the scan\'s, and a fresh topic is decided without scanning the rules', () => {
    const rules: unknown[] = [];
    for (let i = 0; i < 25_000; i++) rules.push({ identities: [`dev-${i}`], publish: [`site/dev-${i}/\${path}/notification`, `home/\${id}/state`] });
    for (let i = 0; i < 24_999; i++) rules.push({ roles: ['client'], subscribe: [`zone/${i}/+/notification`], publish: [`zone/${i}/\${path}/request`] });
    rules.push({ name: 'last', roles: ['client'], publish: ['\${path}/request'] });
    const big = parsePolicy({ version: 1, roles: { client: {} }, rules });
    const who = (i: number) => ({ identity: `dev-${i}`, roles: ['client'] });
    const topics = (i: number): Array<[Operation, string]> => [
      ['publish', `site/dev-${i}/a/b/notification`],
      ['publish', `site/dev-${i + 1}/a/notification`],
      ['publish', `home/dev-${i}/state`],
      ['publish', `zone/${i}/x/request`],
      ['publish', `fresh/${i}/request`],
      ['publish', `fresh/${i}/nothing`],
      ['subscribe', `zone/${i}/+/notification`],
      ['subscribe', `zone/${i}/#`],
    ];
    // The first decision builds the index; then 1,000 fresh topics are decided one by one.
    decide(big, who(0), 'publish', 'x/request');
    const started = performance.now();
    for (let i = 0; i < 1000; i++) for (const [operation, t] of topics(i * 24)) decide(big, who(i * 24), operation, t);
    const indexedMs = performance.now() - started;
    // The scan, on a sample (it takes milliseconds each): the same answers.
    for (let i = 0; i < 30; i++) {
      const at = (i * 7919) % 24_999;
      for (const [operation, t] of topics(at)) assert.deepEqual(decide(big, who(at), operation, t), decideByScan(big, who(at), operation, t), `${operation} ${t}`);
    }
    assert.equal(decide(big, who(3), 'publish', 'fresh/x/request').rule, 'rules[49999] "last"');
    assert.ok(indexedMs < 2000, `8,000 indexed decisions took ${indexedMs.toFixed(0)} ms`);
  });
});

describe('policy - schema errors name the field', () => {
  const base = () => structuredClone(DEFAULT_POLICY_DATA) as unknown as { rules: Record<string, unknown>[]; identities: Record<string, { roles: string[] }>; [key: string]: unknown };
  const cases: [string, (data: ReturnType<typeof base>) => void, RegExp][] = [
    ['a bad wildcard', (d) => (d.rules[2]!.subscribe = ['ok/+', 'a/#/b']), /^policy: rules\[2\]\.subscribe\[1\]: .*'#' must be a whole last level/],
    ['an unknown placeholder', (d) => (d.rules[0]!.publish = ['x/${who}']), /^policy: rules\[0\]\.publish\[0\]: unknown placeholder/],
    ['a placeholder inside a level', (d) => (d.rules[0]!.publish = ['x/id-${id}']), /^policy: rules\[0\]\.publish\[0\]: a placeholder must be a whole level/],
    ['an undeclared role in a rule', (d) => (d.rules[3]!.roles = ['client', 'clint']), /^policy: rules\[3\]\.roles\[1\]: unknown role "clint"/],
    ['an undeclared role of an identity', (d) => (d.identities['relais-router']!.roles = ['routr']), /^policy: identities\.relais-router\.roles\[0\]: unknown role "routr"/],
    ['an unknown field in a rule', (d) => (d.rules[1]!.allow = true), /^policy: rules\[1\]: .*"allow"/],
    ['an unknown grant', (d) => ((d.roles as Record<string, { grants: string[] }>).client!.grants = ['everything']), /^policy: roles\.client\.grants\[0\]: /],
    ['a wrong version', (d) => (d.version = 2), /^policy: version: /],
    ['rules missing', (d) => delete (d as Record<string, unknown>).rules, /^policy: rules: /],
    ['a served pattern that is no action', (d) => (d.identities.svc = { serves: ['demo/request'] } as never), /^policy: identities\.svc\.serves\[0\]: action pattern "demo\/request": .*reserved segment 'request'/],
    ['a served pattern with # inside', (d) => (d.identities.svc = { serves: ['demo/#/x'] } as never), /^policy: identities\.svc\.serves\[0\]: .*'#' must be a whole last level/],
    ['${serves} twice in a pattern', (d) => (d.rules[4]!.subscribe = ['${serves}/x/${serves}/request']), /^policy: rules\[4\]\.subscribe\[0\]: \$\{serves\} may appear once/],
    ['a restricted root of two levels', (d) => (d.restricted = { 'a/b': 'x' }), /^policy: restricted\.a\/b: restricted root "a\/b": a root is one level/],
    ['relais/ as a restricted root', (d) => (d.restricted = { relais: 'x' }), /^policy: restricted\.relais: .*relais-actions already/],
    ['a rule with no pattern', (d) => d.rules.push({ roles: ['client'] }), new RegExp(`^policy: rules\\[${DEFAULT_POLICY_DATA.rules.length}\\]: a rule needs at least one`)],
  ];
  for (const [what, breakIt, expected] of cases) {
    it(`schema - ${what}`, () => {
      const data = base();
      breakIt(data);
      assert.throws(() => parsePolicy(data), (error: Error) => error instanceof PolicyError && expected.test(error.message) ? true : assert.fail(`message: ${error.message}`));
    });
  }

  it('schema - the default policy is valid', () => {
    assert.doesNotThrow(() => parsePolicy(base()));
  });
});

describe('policy - files (JSON or YAML)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-policy-file-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('files - a YAML policy is read like its JSON twin', () => {
    const yaml = write('policy.yaml', stringifyYaml(DEFAULT_POLICY_DATA));
    const json = write('policy.json', JSON.stringify(DEFAULT_POLICY_DATA));
    const subject: Subject = { identity: 'ann', roles: ['client'] };
    for (const topic of ['relais/presence/ann', 'relais/presence/bob', 'demo/echo/request']) {
      assert.deepEqual(decide(loadPolicy(yaml), subject, 'publish', topic), decide(loadPolicy(json), subject, 'publish', topic));
    }
  });

  it('files - a YAML "billion laughs" is refused, not expanded', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    assert.throws(() => loadPolicy(write('bomb.yml', levels.join('\n'))), (error: Error) => error instanceof PolicyError && /not valid YAML: .*alias/i.test(error.message));
  });

  it('files - broken YAML names the file and the line', () => {
    assert.throws(() => loadPolicy(write('broken.yaml', 'version: 1\nroles: [\n')), /broken\.yaml: not valid YAML: .*line/i);
  });
});

describe('policy - sessions <identity>~<session> (protocol §2.1, docs/security.md "Sessions")', () => {
  const policy = defaultPolicy({ serves: { svc: ['demo/#'] } });
  const both = (subject: Subject, operation: Operation, topic: string) => {
    const decision = decide(policy, subject, operation, topic);
    assert.deepEqual(decideByScan(policy, subject, operation, topic), decision, 'the index agrees with the scan');
    return decision;
  };
  it("${id} and the owned topics are the session's; roles, grants, serves and a rule's identities are the identity's", () => {
    const tab1 = { identity: 'alice~tab1', roles: ['client'] };
    assert.equal(identityOf('alice~tab1~rt'), 'alice');
    assert.equal(both(tab1, 'subscribe', 'demo/echo/response/alice~tab1').allow, true);
    assert.equal(both({ ...tab1, identity: 'alice~tab1~rt' }, 'subscribe', 'demo/echo/response/alice~tab1').allow, true, 'its lane');
    assert.equal(both(tab1, 'subscribe', 'demo/echo/response/alice~tab2').rule, 'builtin:others-responses');
    assert.equal(both(tab1, 'subscribe', 'demo/echo/response/alice').rule, 'builtin:others-responses');
    assert.equal(both(tab1, 'publish', 'relais/presence/alice~tab1').allow, true);
    assert.equal(both(tab1, 'publish', 'relais/presence/alice').rule, 'builtin:others-presence');
    // serves is the identity's entry: a service's session serves what the identity serves, targeted at the session.
    const svcB = { identity: 'svc~b', roles: ['service'] };
    assert.equal(both(svcB, 'subscribe', 'demo/echo/request').allow, true);
    assert.equal(both(svcB, 'subscribe', 'demo/echo/request/svc~b').allow, true);
    assert.equal(both(svcB, 'subscribe', 'demo/echo/request/svc').rule, 'builtin:others-requests');
    // A rule naming an identity applies to its sessions.
    const named = parsePolicy({ version: 1, roles: {}, rules: [{ identities: ['bob'], subscribe: ['x/notification'] }] });
    assert.equal(decide(named, { identity: 'bob~s' }, 'subscribe', 'x/notification').allow, true);
    assert.equal(decideByScan(named, { identity: 'bob~s' }, 'subscribe', 'x/notification').allow, true);
    assert.equal(decide(named, { identity: 'bobby~s' }, 'subscribe', 'x/notification').allow, false);
  });
  it('sessions.max: the default, the policy\'s, the largest of the roles that set one; an identity cannot contain ~', () => {
    assert.equal(sessionLimit(policy, { identity: 'alice', roles: ['client'] }), DEFAULT_MAX_SESSIONS);
    const data = structuredClone(DEFAULT_POLICY_DATA) as Record<string, unknown> & { roles: Record<string, Record<string, unknown>> };
    data.sessions = { max: 2 };
    data.roles.observer = { ...data.roles.observer, sessions: { max: 0 } };
    data.roles.admin = { ...data.roles.admin, sessions: { max: 20 } };
    const set = parsePolicy(data);
    assert.equal(sessionLimit(set, { identity: 'alice', roles: ['client'] }), 2);
    assert.equal(sessionLimit(set, { identity: 'olga', roles: ['observer'] }), 0);
    assert.equal(sessionLimit(set, { identity: 'ada', roles: ['observer', 'admin'] }), 20);
    assert.throws(() => parsePolicy({ ...data, sessions: { max: -1 } }), /sessions\.max/);
    assert.throws(() => parsePolicy({ ...data, sessions: { max: 1001 } }), /sessions\.max/);
    assert.throws(() => parsePolicy({ ...data, identities: { 'alice~x': {} } }), /identities/);
  });
});
