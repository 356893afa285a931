import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeOf } from '../../src/client/inbound.js';
import { parseTopic } from '../../src/protocol/topics.js';

const serves = (action: string) => action === 'demo/echo';
const route = (topic: string) => routeOf(parseTopic(topic), 'me', serves);

describe('inbound', () => {
  it('inbound - each topic goes to the part of the client that acts on it (protocol §2.2, §4.2)', () => {
    assert.deepEqual(route('demo/echo/response/me'), { to: 'requester' });
    assert.deepEqual(route('demo/echo/response/other'), { to: 'subscriptions' });
    assert.deepEqual(route('demo/echo/request'), { to: 'handlers', action: 'demo/echo', targeted: false });
    assert.deepEqual(route('demo/other/request'), { to: 'subscriptions' }, 'an action not served: a # subscriber stays silent');
    assert.deepEqual(route('demo/other/request/me'), { to: 'handlers', action: 'demo/other', targeted: true }, 'targeted at me: answered, with code 3 if not served');
    assert.deepEqual(route('demo/echo/request/other'), { to: 'subscriptions' });
    assert.deepEqual(route('demo/echo/cancel'), { to: 'cancel', action: 'demo/echo' });
    assert.deepEqual(route('demo/other/cancel'), { to: 'subscriptions' });
    assert.deepEqual(route('relais/presence/vm-1'), { to: 'presence', clientId: 'vm-1' });
    assert.deepEqual(route('demo/alerts/notification'), { to: 'subscriptions' });
    assert.deepEqual(route('anything/else'), { to: 'subscriptions' });
  });
});
