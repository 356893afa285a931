/** The error of a refused SUBSCRIBE names the filter, the identity, the policy, and what the default policy asks for it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NotAuthorizedError } from '../../src/protocol/errors.js';
import { subscriptionRefused } from '../../src/client/connection/subscription-refusal.js';

test('subscription refused - each topic of the scheme gets the grant the default policy asks for it', () => {
  const cases: Array<[filter: string, wanted: RegExp]> = [
    ['billing/pay/request', /to serve billing\/pay, svc needs the role service and billing\/pay in its serves.*--serves 'billing\/pay'/],
    ['billing/pay/request/svc', /to serve billing\/pay, svc needs the role service/],
    ['system/command/run/cancel', /--serves 'system\/#'/],
    ['billing/pay/request/other', /the requests targeted at other are for other alone/],
    ['system/disks/list_disks/response/svc', /the role agent-user beside client, or admin/],
    ['billing/pay/response/svc', /calling billing\/pay takes the role client, service or admin/],
    ['billing/pay/response/other', /the responses to other are for other alone/],
    ['sensors/notification', /reading the notifications of sensors takes the role observer, client or service/],
    ['#', /the grant "wildcards"/],
    ['+/pay/request', /the grant "wildcards"/],
  ];
  for (const [filter, wanted] of cases) {
    const error = subscriptionRefused(filter, 'svc', new Error('Subscribe error: Unspecified error'));
    assert.ok(error instanceof NotAuthorizedError);
    assert.equal(error.responseCode, 4);
    assert.match(error.message, new RegExp(`^the broker refused the subscription to ${filter.replace(/[+#]/g, '\\$&')} \\(SUBACK 0x80\\): its policy does not let svc subscribe to it`), filter);
    assert.match(error.message, wanted, filter);
    assert.match((error.cause as Error).message, /Unspecified error/);
  }
  assert.doesNotMatch(subscriptionRefused('weird', 'svc').message, /; /, 'no hint where the scheme says nothing');
});
