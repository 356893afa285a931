import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cancelTopic,
  checkClientId,
  checkFilter,
  checkPath,
  checkTopicName,
  clientIdOfConnection,
  identityOfClientId,
  MAX_PATH_LEVELS,
  parseClientId,
  sessionClientId,
  MAX_TOPIC_LEVELS,
  notificationTopic,
  parseTopic,
  presenceTopic,
  requestTopic,
  responseTopic,
  topicMatches,
} from '../../src/protocol/topics.js';

describe('topics', () => {
  it('topics - builds the PSEC scheme exactly', () => {
    assert.equal(requestTopic('system/disks/list_disks'), 'system/disks/list_disks/request');
    assert.equal(requestTopic('system/disks/list_disks', 'sys-usb'), 'system/disks/list_disks/request/sys-usb');
    assert.equal(requestTopic('system/disks/list_disks', '*'), 'system/disks/list_disks/request');
    assert.equal(responseTopic('system/disks/list_disks', 'vm-gui'), 'system/disks/list_disks/response/vm-gui');
    assert.equal(notificationTopic('system/disk/new_file'), 'system/disk/new_file/notification');
    assert.equal(cancelTopic('system/misc/benchmark'), 'system/misc/benchmark/cancel');
    assert.equal(presenceTopic('vm-gui'), 'relais/presence/vm-gui');
  });

  it('topics - parses each kind back', () => {
    assert.deepEqual(parseTopic('system/disks/list_disks/request'), { kind: 'request', action: 'system/disks/list_disks' });
    assert.deepEqual(parseTopic('system/disks/list_disks/request/sys-usb'), { kind: 'request', action: 'system/disks/list_disks', target: 'sys-usb' });
    assert.deepEqual(parseTopic('system/disks/list_disks/response/vm-gui'), { kind: 'response', action: 'system/disks/list_disks', requester: 'vm-gui' });
    assert.deepEqual(parseTopic('system/events/error/notification'), { kind: 'notification', category: 'system/events/error' });
    assert.deepEqual(parseTopic('a/cancel'), { kind: 'cancel', action: 'a' });
    assert.deepEqual(parseTopic('relais/presence/vm-1'), { kind: 'presence', clientId: 'vm-1' });
    assert.deepEqual(parseTopic('just/some/topic'), { kind: 'other' });
    assert.deepEqual(parseTopic('request'), { kind: 'other' });
    assert.deepEqual(parseTopic('/request'), { kind: 'other' });
  });

  it('topics - refuses wildcards, empty segments and reserved words in actions, with the reason', () => {
    assert.throws(() => requestTopic('a/+/b'), /wildcards/);
    assert.throws(() => requestTopic('a//b'), /empty segment/);
    assert.throws(() => requestTopic('a/request/b'), /reserved segment 'request'/);
    assert.throws(() => requestTopic('$SYS/x'), /may not start with '\$'/);
    assert.throws(() => responseTopic('a', 'bad id'), /client id/);
    assert.throws(() => requestTopic('relais/presence'), /reserved/);
  });

  it('topics - build then parse is the identity for any valid action and ids', () => {
    const segment = fc.stringMatching(/^[a-z0-9_]{1,8}$/).filter((s) => !['request', 'response', 'notification', 'cancel', 'log'].includes(s));
    const action = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/')).filter((a) => !a.startsWith('relais/presence'));
    const id = fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,20}$/).filter((s) => !['request', 'response', 'notification', 'cancel', 'log'].includes(s));
    fc.assert(
      fc.property(action, id, (a, who) => {
        assert.deepEqual(parseTopic(requestTopic(a)), { kind: 'request', action: a });
        assert.deepEqual(parseTopic(requestTopic(a, who)), { kind: 'request', action: a, target: who });
        assert.deepEqual(parseTopic(responseTopic(a, who)), { kind: 'response', action: a, requester: who });
      }),
    );
  });

  it('topics - parseTopic never throws on any string', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (topic) => void parseTopic(topic)));
  });

  it('topics - matches MQTT filters like a broker', () => {
    assert.ok(topicMatches('a/+/c', 'a/b/c'));
    assert.ok(!topicMatches('a/+/c', 'a/b/d'));
    assert.ok(topicMatches('a/#', 'a'));
    assert.ok(topicMatches('a/#', 'a/b/c'));
    assert.ok(topicMatches('#', 'x/y'));
    assert.ok(!topicMatches('#', '$SYS/x'));
    assert.ok(!topicMatches('a/+', 'a/b/c'));
    assert.ok(topicMatches('a/+', 'a/'));
    assert.ok(!topicMatches('a/+', 'a'));
    assert.ok(topicMatches('+/+', '/'));
    assert.ok(!topicMatches('a/b', 'a/bc'));
    assert.equal(checkFilter('a/#/b'), "filter \"a/#/b\": '#' must be a whole last level");
    assert.equal(checkFilter('a/b+'), "filter \"a/b+\": '+' must be a whole level");
    assert.equal(checkFilter('a/+/#'), undefined);
  });

  it('topics - matches every filter and topic of up to four levels as the level-by-level definition does', () => {
    // The definition, on split levels [MQTT-4.7]: topicMatches walks the text in place instead.
    const byLevels = (filter: string, topic: string): boolean => {
      if (filter === topic) return true;
      if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
      const f = filter.split('/');
      const t = topic.split('/');
      for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') return true;
        if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
      }
      return f.length === t.length;
    };
    const levels = ['a', 'b', '', 'ab', '$x', '+', '#'];
    const texts: string[] = [];
    const grow = (prefix: string, depth: number) => {
      for (const level of levels) {
        const text = depth === 0 ? level : `${prefix}/${level}`;
        texts.push(text);
        if (depth < 3) grow(text, depth + 1);
      }
    };
    grow('', 0);
    const topics = texts.filter((text) => !text.includes('+') && !text.includes('#'));
    for (const filter of texts) for (const topic of topics) assert.equal(topicMatches(filter, topic), byLevels(filter, topic), `${JSON.stringify(filter)} on ${JSON.stringify(topic)}`);
  });

  it('topics - answers stay the same past the bound of remembered valid paths', () => {
    for (let i = 0; i < 10_000; i++) assert.equal(checkPath(`fleet/unit${i}/reboot`), undefined);
    assert.equal(checkPath('fleet/unit1/reboot'), undefined);
    for (let round = 0; round < 2; round++) {
      assert.match(checkPath('fleet/request') ?? '', /reserved segment 'request'/);
      assert.match(checkPath('fleet//reboot') ?? '', /empty segment/);
    }
  });

  it('topics - limits brokers enforce by dropping the connection are refused before sending (protocol §2.1)', () => {
    const levels = (n: number) => Array.from({ length: n }, (_, i) => `l${i}`).join('/');
    assert.equal(MAX_TOPIC_LEVELS, 100);
    assert.equal(checkTopicName(levels(100)), undefined);
    assert.match(checkTopicName(levels(101)) ?? '', /has 101 levels; brokers accept at most 100/);
    assert.match(checkFilter(levels(101)) ?? '', /has 101 levels/);
    assert.match(checkPath(levels(121)) ?? '', /has 121 levels; at most 98/);
    assert.equal(checkPath(levels(MAX_PATH_LEVELS)), undefined, 'the longest action still makes a topic within 100 levels');
    assert.throws(() => responseTopic(levels(MAX_PATH_LEVELS + 1), 'vm-x'), /at most 98/);
    assert.match(checkTopicName('x/+/y') ?? '', /a topic name has no wildcards/);
    assert.match(checkTopicName('x/#') ?? '', /no wildcards/);
    assert.match(checkTopicName('$SYS/broker') ?? '', /reserved for the broker/);
    assert.equal(checkFilter('$SYS/#'), undefined, 'reading $SYS is fine');
    assert.match(checkTopicName('a\u0000b') ?? '', /U\+0000/);
    assert.match(checkTopicName('a\ud800b') ?? '', /lone surrogate/);
    assert.match(checkTopicName('x'.repeat(65_536)) ?? '', /65536 bytes of UTF-8; at most 65535/);
    assert.match(checkTopicName('é'.repeat(40_000)) ?? '', /80000 bytes/);
    assert.match(checkTopicName('') ?? '', /non-empty/);
    assert.equal(checkTopicName('sensors/Field Devices/temp'), undefined, 'MQTT allows spaces in topics');
    assert.match(checkPath('Field Devices/temp') ?? '', /spaces or control characters/, 'not in Relais names: the NATS gateway drops them');
    assert.match(checkPath('a/b\tc') ?? '', /spaces or control characters/);
    assert.equal(checkClientId('poller.site-2'), undefined);
  });

  it('client ids - <identity>[~<session>], a lane adds ~rt: one parser, every other reading through it (protocol §2.1, §6.2)', () => {
    assert.deepEqual(parseClientId('alice'), { identity: 'alice' });
    assert.deepEqual(parseClientId('alice~tab1'), { identity: 'alice', session: 'tab1' });
    assert.deepEqual(parseClientId('alice~rt'), { identity: 'alice', lane: 'rt' });
    assert.deepEqual(parseClientId('alice~web-3f_x~rt'), { identity: 'alice', session: 'web-3f_x', lane: 'rt' });
    assert.equal(identityOfClientId('alice~tab1~rt'), 'alice');
    assert.equal(clientIdOfConnection('alice~tab1~rt'), 'alice~tab1');
    assert.equal(clientIdOfConnection('alice~rt'), 'alice');
    assert.equal(checkClientId('alice~tab1'), undefined);
    assert.equal(checkClientId(`alice~${'s'.repeat(32)}`), undefined);
    assert.match(checkClientId('alice~tab1~rt') ?? '', /real-time lane/);
    assert.match(checkClientId('alice~rt') ?? '', /real-time lane/);
    assert.match(checkClientId(`alice~${'s'.repeat(33)}`) ?? '', /1-32 characters/);
    assert.match(checkClientId('alice~tab.1') ?? '', /1-32 characters/);
    assert.match(checkClientId('alice~') ?? '', /1-32 characters/);
    assert.match(checkClientId('~tab1') ?? '', /1-128 characters/);
    assert.match(checkClientId('alice~a~b') ?? '', /more than one/);
    assert.match(checkClientId('response~tab1') ?? '', /reserved/);
    assert.equal(sessionClientId('alice', 'web-1'), 'alice~web-1');
    assert.throws(() => sessionClientId('alice', 'rt'), /real-time lane/);
    assert.throws(() => sessionClientId('alice~x', 'y'), /more than one/);
    // Topics carry session ids like any other.
    assert.deepEqual(parseTopic('demo/echo/response/alice~tab1'), { kind: 'response', action: 'demo/echo', requester: 'alice~tab1' });
    assert.deepEqual(parseTopic('relais/presence/alice~tab1'), { kind: 'presence', clientId: 'alice~tab1' });
    assert.deepEqual(parseTopic('relais/presence/alice~tab1~rt'), { kind: 'other' }, 'a lane has no presence of its own');
  });
});
