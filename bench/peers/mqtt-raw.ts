/**
 * Raw MQTT.js doing Relais' exchange by hand (bench/lib/clients.ts RawRequester and
 * RawResponder: the same envelope fields, a targeted request topic, the response topic of
 * the requester), at the QoS given with --qos: 0 is what most hand-written clients use, 1 is
 * what Relais uses. The requester addresses the handler whose id is --peer.
 */
import { rawEnd, RawRequester, RawResponder } from '../lib/clients.js';
import { runPeer } from './child.js';

const action = (qos: 0 | 1) => `rawq${qos}/echo`;

await runPeer({
  async requester({ url, id, peer, qos }) {
    if (!peer) throw new Error('the raw MQTT requester needs --peer (the handler id)');
    const requester = await RawRequester.create(url, id, action(qos), peer, qos);
    return { send: (payload) => requester.request(payload), close: () => rawEnd(requester.client) };
  },
  async handler({ url, id, qos }) {
    const responder = await RawResponder.create(url, id, action(qos), [], qos);
    return { served: () => responder.served, close: () => rawEnd(responder.client) };
  },
});
