import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cancelTopic,
  checkFilter,
  checkPath,
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
});
