import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from '../../src/broker/embedded.js';
import { redactBroker, toMqttUrl } from '../../src/client/options.js';

describe('addresses', () => {
  it('addresses - a password in a broker URL is masked, everything else kept', () => {
    assert.equal(redactBroker('mqtt://alice:s3cret@broker.lan:1883'), 'mqtt://alice:***@broker.lan:1883');
    assert.equal(redactBroker('wss://bob:p%40ss@example.org/mqtt'), 'wss://bob:***@example.org/mqtt');
    assert.equal(redactBroker('mqtts://:only-password@10.0.0.2:8883'), 'mqtts://:***@10.0.0.2:8883');
    assert.equal(redactBroker('mqtt://alice@broker.lan:1883'), 'mqtt://alice@broker.lan:1883');
    assert.equal(redactBroker('mqtt://127.0.0.1:1883'), 'mqtt://127.0.0.1:1883');
    assert.equal(redactBroker('unix:///run/relais.sock'), 'unix:///run/relais.sock');
    assert.equal(redactBroker('wss://gw.example/mqtt?token=abc123&x=1'), 'wss://gw.example/mqtt?***');
    // Not a URL at all: still no password left behind.
    assert.equal(redactBroker('mqtt://eve:pw@[bad'), 'mqtt://eve:***@[bad');
  });

  it('addresses - unix:// becomes the URL MQTT.js understands', () => {
    assert.equal(toMqttUrl('unix:///run/relais.sock'), 'mqtt+unix:///run/relais.sock');
    assert.equal(toMqttUrl('mqtt://127.0.0.1:1883'), 'mqtt://127.0.0.1:1883');
  });

  it('addresses - only loopback hosts count as local', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', 'LOCALHOST']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'broker.lan', '128.0.0.1']) assert.equal(isLoopbackHost(host), false, host);
  });
});
