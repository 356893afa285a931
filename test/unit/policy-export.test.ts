import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exportMosquitto } from '../../src/security/mosquitto-export.js';
import { parsePolicy } from '../../src/security/policy.js';

const files = { aclPath: '/etc/mosquitto/relais.acl', passwordPath: '/etc/mosquitto/relais.passwd' };
const lines = (acl: string) => acl.split('\n').filter((line) => line && !line.startsWith('#'));

describe('policy - Mosquitto export', () => {
  const policy = parsePolicy({
    version: 1,
    roles: { client: {}, reader: { grants: ['wildcards'] }, nobody: {} },
    identities: { alice: { roles: ['client'] }, rex: { roles: ['reader'] } },
    rules: [
      { name: 'all', publish: ['relais/presence/${id}'], subscribe: ['relais/presence/+'] },
      { name: 'calls', roles: ['client'], publish: ['${path}/request'], subscribe: ['${path}/response/${id}'] },
      { name: 'too wide', roles: ['reader'], publish: ['#'], subscribe: ['#', 'sensors/+/notification'] },
      { name: 'one', identities: ['dev-1'], publish: ['home/${id}/state'] },
      { name: 'nobody', roles: ['nobody'], publish: ['x/y'] },
    ],
  });
  const exported = exportMosquitto(policy, { ...files, depth: 2 });

  it('export - rules for everyone are pattern lines with %u for ${id}', () => {
    assert.deepEqual(lines(exported.acl).slice(0, 2), ['pattern write relais/presence/%u', 'pattern read relais/presence/+']);
  });

  it('export - role rules become user sections of the identities holding the role, ${path} expanded by depth', () => {
    const acl = lines(exported.acl);
    const alice = acl.slice(acl.indexOf('user alice') + 1, acl.indexOf('user dev-1') === -1 ? undefined : acl.indexOf('user dev-1'));
    assert.deepEqual(alice, ['topic write +/request', 'topic write +/+/request', 'topic read +/response/alice', 'topic read +/+/response/alice']);
    assert.ok(acl.includes('user dev-1') && acl.includes('topic write home/dev-1/state'), 'an identity named by a rule has its section');
  });

  it("export - a line that would break a built-in rule is left out and said", () => {
    const acl = lines(exported.acl);
    const rex = acl.slice(acl.indexOf('user rex') + 1);
    assert.ok(!rex.includes('topic write #'), 'write # would reach others\' presence');
    assert.ok(!rex.includes('topic read #'), 'read # would reach others\' responses');
    assert.ok(rex.includes('topic read sensors/+/notification'));
    assert.match(exported.acl, /# left out \(rules\[2\] "too wide"\): topic write # {2}-- built-in others-presence/);
    assert.ok(exported.notes.some((note) => /rex: left out "topic read #".*others-responses/.test(note)));
  });

  it('export - lines Mosquitto makes wider than decide() are marked, unheld roles noted', () => {
    assert.match(exported.acl, /# wider on Mosquitto: also reaches relais\/\.\.\. topics.*\ntopic write \+\/request\n/);
    assert.ok(exported.notes.some((note) => /role nobody: no known identity/.test(note)));
  });

  it('export - the configuration fragment', () => {
    for (const line of ['per_listener_settings false', 'allow_anonymous false', `password_file ${files.passwordPath}`, `acl_file ${files.aclPath}`, 'set_tcp_nodelay true', 'max_queued_messages 1000000', 'max_inflight_messages 0']) {
      assert.ok(exported.conf.split('\n').includes(line), line);
    }
  });
});

describe('policy - Mosquitto export of serves and restricted roots', () => {
  const policy = parsePolicy({
    version: 1,
    roles: { client: {}, service: {}, ops: { grants: ['restricted'] } },
    identities: { alice: { roles: ['client'] }, svc: { roles: ['service'], serves: ['shop/#'] }, agent: { roles: ['service'], serves: ['vault/open'] }, root: { roles: ['ops'] } },
    restricted: { vault: 'secrets' },
    rules: [
      { name: 'everyone serves', subscribe: ['${serves}/request'] },
      { name: 'calls', roles: ['client', 'service', 'ops'], publish: ['${path}/request'] },
      { name: 'serving', roles: ['service'], subscribe: ['${serves}/request', '${serves}/request/${id}'] },
    ],
  });
  const exported = exportMosquitto(policy, { ...files, depth: 2 });
  const section = (identity: string) => {
    const acl = exported.acl.split('\n');
    const start = acl.indexOf(`user ${identity}`);
    const end = acl.findIndex((line, i) => i > start && line.startsWith('user '));
    return acl.slice(start + 1, end === -1 ? undefined : end).filter((line) => line && !line.startsWith('#'));
  };

  it('export - ${serves} is each served action of the identity, a last # as the levels below up to the depth', () => {
    assert.deepEqual(section('svc').filter((line) => line.startsWith('topic read')), ['topic read shop/request', 'topic read shop/+/request', 'topic read shop/request/svc', 'topic read shop/+/request/svc']);
    assert.ok(exported.notes.some((note) => /everyone: left out "\$\{serves\}\/request".*needs identities/.test(note)));
  });

  it('export - a restricted root is denied to whoever reaches it only through wildcards, and marked wider where named lines reach it too', () => {
    assert.deepEqual(section('alice').filter((line) => line.startsWith('topic deny')), ['topic deny vault/request', 'topic deny vault/+/request']);
    assert.deepEqual(section('root').filter((line) => line.startsWith('topic deny')), [], 'the grant "restricted" lifts it');
    const agent = section('agent');
    assert.ok(!agent.includes('topic deny vault/+/request'), 'a deny would take its own vault/open/request away');
    assert.ok(exported.notes.some((note) => /agent: "write \+\/\+\/request" also reaches vault\/\+\/request on Mosquitto/.test(note)));
  });

  it('sessions are not exported: a note and an ACL comment say so (Mosquitto cannot bind <identity>~<session>); none when the policy has them off', () => {
    const withSessions = exportMosquitto(parsePolicy({ version: 1, roles: {}, rules: [{ publish: ['relais/presence/${id}'] }] }), files);
    assert.ok(withSessions.notes.some((note) => /sessions \(<identity>~<session>\) are not exported.*--no-session.*embedded broker/.test(note)));
    assert.match(withSessions.acl, /^# sessions \(<identity>~<session>\) are not exported/m);
    const without = exportMosquitto(parsePolicy({ version: 1, roles: {}, sessions: { max: 0 }, rules: [{ publish: ['relais/presence/${id}'] }] }), files);
    assert.ok(!without.notes.some((note) => /sessions/.test(note)));
  });
});
