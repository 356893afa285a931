/**
 * A client that reconnects reloads its directory from the retained presences (protocol §7.2).
 * With thousands of them on the broker and a loaded machine, they come for seconds: a client
 * alive all along must not be forgotten because its presence came late (its requests would
 * fail with NoHandlerError). Meant for `npm run test:loaded`: quiet, the replay is fast enough
 * for any rule.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { setup, SUITE_TIMEOUT, uniqueId, type Kit } from '../testkit/index.js';

const RETAINED = 2000;
const RECONNECTIONS = 10;

describe('directory reload', { timeout: SUITE_TIMEOUT }, () => {
  let kit: Kit;
  let filler: MqttClient;
  before(async () => {
    kit = await setup('aedes');
    filler = await mqtt.connectAsync(kit.broker.url, { clientId: uniqueId('filler'), protocolVersion: 4 });
    // What a long-lived broker keeps: the stopped presences of clients that came and went.
    for (let n = 0; n < RETAINED; n++) {
      const id = uniqueId('gone');
      await filler.publishAsync(`relais/presence/${id}`, JSON.stringify({ type: 'notification', source: id, destination: '*', payload: { status: 'stopped', actions: [], since: 1, seq: 1 } }), { qos: 0, retain: true });
    }
  });
  after(async () => {
    await filler?.endAsync();
    await kit?.cleanup();
  });

  it(`directory - after each of ${RECONNECTIONS} reconnections, among ${RETAINED} retained presences, a handler alive all along is still known once the directory settles`, async () => {
    const server = await kit.connect(uniqueId('server'));
    await server.handle('demo/reload', () => 'here');
    const client = await kit.connect(uniqueId('client'), { reconnectDelay: 10 });
    await client.waitForHandler('demo/reload');
    const lost: number[] = [];
    for (let round = 0; round < RECONNECTIONS; round++) {
      const settled = once(client.directory, 'settled');
      (client as unknown as { transport: { main: { dropSocket(): void } } }).transport.main.dropSocket();
      await settled;
      if (!client.directory.providers('demo/reload').has(server.id)) lost.push(round);
    }
    assert.deepEqual(lost, [], 'reconnections after which the handler was forgotten');
    assert.equal(await client.request('demo/reload', {}), 'here');
  });
});
