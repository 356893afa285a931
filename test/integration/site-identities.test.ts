/**
 * A central keeps its identities to itself (docs/security.md "Sites"): a site may not send as
 * one of the central's operators even while that operator is offline (no connection, no
 * retained presence), whereas at a site the central speaks for the operators who command it.
 * A real embedded broker with the default policy; the site is a raw MQTT.js client with its
 * token, as a pulling site's uplink connects.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inbox, startSecureBroker, type SecureBroker } from '../testkit/secure-broker.js';

const notification = (source: string, marker: string) => JSON.stringify({ type: 'notification', source, destination: '*', payload: { marker } });

for (const identitiesStayLocal of [true, false]) {
  describe(`a link's other end speaking for an offline identity of this broker (identitiesStayLocal: ${identitiesStayLocal})`, { timeout: 60_000 }, () => {
    let secure: SecureBroker;

    before(async () => {
      secure = await startSecureBroker([['alice', ['client']], ['root', ['admin']], ['poller-1', ['site']], ['poller-2', ['site']]], { security: { identitiesStayLocal } });
    });
    after(async () => secure.close());

    it(identitiesStayLocal ? 'is refused (a central): a site cannot send as alice while she is offline' : 'is allowed (a site): the central speaks for its operators', async () => {
      const witness = await secure.raw('root');
      const seen = inbox(witness);
      await witness.subscribeAsync('demo/#', { qos: 1 });
      const site = await secure.raw('poller-1');
      const marker = async () => ((await seen.next('demo/who/notification')).payload as { marker: string }).marker;
      // One client's messages arrive in order: the free id's (always allowed) comes right after alice's, if hers went through.
      await site.publishAsync('demo/who/notification', notification('alice', 'as-alice'), { qos: 1 });
      await site.publishAsync('demo/who/notification', notification('agent-p1', 'as-agent'), { qos: 1 });
      if (identitiesStayLocal) {
        assert.equal(await marker(), 'as-agent');
        await secure.logged(/site-claim.*"alice" is an identity of this broker/);
      } else {
        assert.equal(await marker(), 'as-alice');
        assert.equal(await marker(), 'as-agent');
      }
      // Another link's end is not one of "our" identities: speaking for it is decided by claims alone.
      await site.publishAsync('demo/who/notification', notification('poller-2', 'as-poller-2'), { qos: 1 });
      assert.equal(await marker(), 'as-poller-2');
    });

    if (identitiesStayLocal) {
      it("a site's roster may not list a client of this broker: it would make requests to them fail while the site is down", async () => {
        const witness = await secure.raw('root');
        const seen = inbox(witness);
        await witness.subscribeAsync('relais/sites/poller-1/clients', { qos: 1 });
        const site = await secure.raw('poller-1');
        const roster = (clients: string[]) => JSON.stringify({ type: 'notification', source: 'poller-1', destination: '*', payload: { site: 'poller-1', clients } });
        // One client's messages arrive in order: the second roster comes first if the first was dropped.
        await site.publishAsync('relais/sites/poller-1/clients', roster(['agent-p1', 'alice']), { qos: 1 });
        await site.publishAsync('relais/sites/poller-1/clients', roster(['agent-p1']), { qos: 1 });
        assert.deepEqual(((await seen.next('relais/sites/poller-1/clients')).payload as { clients: string[] }).clients, ['agent-p1']);
        await secure.logged(/site-claim.*"alice" is an identity of this broker/);
      });
    }
  });
}
