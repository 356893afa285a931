import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cancelTopic,
  checkClientId,
  checkFilter,
  checkPath,
  checkTopicName,
  MAX_PATH_LEVELS,
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
    assert.equal(checkFilter('a/#/b'), "filter \"a/#/b\": '#' must be a whole last level");
    assert.equal(checkFilter('a/b+'), "filter \"a/b+\": '+' must be a whole level");
    assert.equal(checkFilter('a/+/#'), undefined);
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
});
