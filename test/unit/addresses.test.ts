import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from '../../src/broker/embedded.js';
import { nodeRuntime } from '../../src/client/node-runtime.js';
import { brokerUrlOptions, checkOptions, redactBroker, resolveOptions } from '../../src/client/options.js';
import { readableLogLine } from '../../src/cli/common.js';
import { testLogger } from '../testkit/index.js';

describe('addresses', () => {
  it('addresses - a password in a broker URL is masked, everything else kept', () => {
    assert.equal(redactBroker('mqtt://alice:s3cret@broker.lan:1883'), 'mqtt://alice:***@broker.lan:1883');
    assert.equal(redactBroker('wss://bob:p%40ss@example.org/mqtt'), 'wss://bob:***@example.org/mqtt');
    assert.equal(redactBroker('mqtts://:only-password@10.0.0.2:8883'), 'mqtts://:***@10.0.0.2:8883');
    assert.equal(redactBroker('mqtt://alice@broker.lan:1883'), 'mqtt://alice@broker.lan:1883');
    assert.equal(redactBroker('mqtt://127.0.0.1:1883'), 'mqtt://127.0.0.1:1883');
    assert.equal(redactBroker('unix:///run/relais.sock'), 'unix:///run/relais.sock');
    assert.equal(redactBroker('wss://gw.example/mqtt?token=abc123&x=1'), 'wss://gw.example/mqtt?***');
    // Not a URL at all: still no password left behind, wherever it sits.
    assert.equal(redactBroker('mqtt://eve:pw@[bad'), 'mqtt://***@[bad');
    assert.equal(redactBroker('mqtt://user:pa/ss@host'), 'mqtt://***@host');
  });

  it('addresses - connect options that cannot work are refused without repeating the URL', () => {
    const base = resolveOptions({ id: 'x', logger: testLogger }, nodeRuntime);
    assert.equal(checkOptions(base), undefined);
    for (const broker of ['user:secret@host:1', 'mqtt://user:pa/ss@host', 'http://host', 'not a url']) {
      const problem = checkOptions({ ...base, broker });
      assert.match(problem ?? '', /the broker URL must be mqtt:\/\/, mqtts:\/\/, ws:\/\/, wss:\/\/ or unix:\/\//, broker);
      assert.ok(!problem!.includes('secret') && !problem!.includes('pa/ss'), problem);
    }
    assert.match(checkOptions({ ...base, connectTimeout: 30 * 24 * 3600 * 1000 }) ?? '', /connectTimeout must be a number of ms up to 2147483647/);
    assert.match(checkOptions({ ...base, directorySettle: Number.NaN }) ?? '', /directorySettle/);
  });

  it('addresses - a broker URL becomes the options MQTT.js would read from it, without url.parse (deprecated on Node 24)', () => {
    assert.deepEqual(brokerUrlOptions('mqtt://127.0.0.1:1883'), { protocol: 'mqtt', host: '127.0.0.1', port: 1883, query: {} });
    assert.deepEqual(brokerUrlOptions('mqtts://broker.example:8883'), { protocol: 'mqtts', host: 'broker.example', port: 8883, query: {} });
    assert.deepEqual(brokerUrlOptions('unix:///run/relais.sock'), { protocol: 'mqtt', unixSocket: true, host: '', path: '/run/relais.sock', query: {} });
    assert.deepEqual(brokerUrlOptions('ws://127.0.0.1:8080/mqtt?token=a%20b'), { protocol: 'ws', host: '127.0.0.1', port: 8080, path: '/mqtt?token=a%20b', query: { token: 'a b' } });
    assert.deepEqual(brokerUrlOptions('wss://host/mqtt'), { protocol: 'wss', host: 'host', path: '/mqtt', query: {} });
    assert.deepEqual(brokerUrlOptions('mqtt://[::1]:1883'), { protocol: 'mqtt', host: '::1', port: 1883, query: {} });
    assert.deepEqual(brokerUrlOptions('mqtt://alice:p%40ss@host:1883'), { protocol: 'mqtt', host: 'host', port: 1883, query: {}, auth: 'alice:p@ss' });
    // A password holding a literal % is no percent-encoding: kept as written, not a URIError.
    assert.deepEqual(brokerUrlOptions('mqtt://alice:50%zz@host:1883'), { protocol: 'mqtt', host: 'host', port: 1883, query: {}, auth: 'alice:50%zz' });
  });

  it('addresses - only loopback hosts count as local', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', 'LOCALHOST']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'broker.lan', '128.0.0.1']) assert.equal(isLoopbackHost(host), false, host);
  });

  it('addresses - log lines shown to a person cannot be forged by remote text', () => {
    const record = JSON.stringify({ level: 40, msg: 'invalid request', source: 'evil\nrelais: error: forged \u001b[2J', action: 'a/b' });
    const line = readableLogLine(record);
    assert.equal(line.split('\n').length, 1, line);
    assert.ok(!line.includes('\u001b'), 'no raw escape character');
    assert.match(line, /^relais: warn: invalid request \(source="evil\\nrelais: error: forged \\u001b\[2J" action=a\/b\)$/);
  });
});
