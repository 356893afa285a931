/**
 * Every broker URL a client accepts (mqtt://, unix://, ws://, mqtts://) reaches the same bus,
 * on the embedded broker and on Mosquitto, each listening on all four at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import { BrokerStartError, startEmbeddedBroker } from '../../src/broker/index.js';
import { after, before, describe, it } from 'node:test';
import { makeTlsCertificate, peerGate, setup, testLogger, uniqueId, within, type BrokerKind, type Kit } from '../testkit/index.js';
import { connect, NotSentError } from '../../src/index.js';

const openssl = peerGate('openssl', 'the mqtts:// tests (a certificate is made for each run)');
const mosquitto = peerGate('mosquitto', 'the transport tests on Mosquitto');

for (const kind of ['aedes', 'mosquitto'] as BrokerKind[]) {
  describe(`transports on ${kind}`, { skip: kind === 'mosquitto' ? mosquitto.skip : false, timeout: 60_000 }, () => {
    let kit: Kit;
    before(async () => {
      kit = await setup(kind, { unix: true, websocket: true, tls: openssl.run });
    });
    after(async () => {
      await kit?.cleanup();
    });

    it('connect - clients on mqtt://, unix://, ws:// and mqtts:// call one handler and hear one another', async () => {
      const server = await kit.connect(uniqueId('server'));
      await server.handle('demo/transport', async (payload: { from: string }, ctx) => {
        ctx.progress(0.5);
        return { heard: payload.from };
      });
      const urls: Array<[string, string | undefined]> = [
        ['unix', kit.broker.unixUrl],
        ['ws', kit.broker.wsUrl],
        ['mqtts', kit.broker.tlsUrl],
      ];
      const listener = await kit.connect(uniqueId('listener'));
      const heard: string[] = [];
      const allHeard = new Promise<void>((resolve) =>
        void listener.subscribe('demo/transports/notification', (message) => {
          heard.push((message.envelope.payload as { from: string }).from);
          if (heard.length === urls.filter(([, url]) => url).length) resolve();
        }),
      );
      for (const [scheme, url] of urls) {
        if (!url) {
          assert.equal(scheme, 'mqtts', 'only the TLS listener may be missing (no openssl)');
          continue;
        }
        assert.ok(url.startsWith(`${scheme}://`), url);
        const client = await kit.connect(uniqueId(`client-${scheme}`), {
          broker: url,
          ...(scheme === 'mqtts' && { tls: { ca: kit.broker.tlsCa } }),
        });
        await client.waitForHandler('demo/transport', { timeout: 5000 });
        const steps = [];
        for await (const step of client.call('demo/transport', { from: scheme })) steps.push(step.kind === 'final' ? step.payload : `${step.kind} ${step.progress}`);
        // Its progress leaves in the command's turn: no acknowledgement besides it (protocol §4.7).
        assert.deepEqual(steps, ['progress 0.5', { heard: scheme }], `over ${url}`);
        client.notify('demo/transports', { from: scheme });
      }
      await allHeard;
      assert.deepEqual(heard.sort(), urls.filter(([, url]) => url).map(([scheme]) => scheme).sort());
    });

    it('connect - mqtts:// refuses a broker whose certificate it does not trust, with the reason', { skip: openssl.skip }, async () => {
      // Closed again should it connect after all: a client left open would keep the test process alive.
      const connecting = connect({ id: uniqueId('untrusting'), broker: kit.broker.tlsUrl!, logger: testLogger, connectTimeout: 5000 });
      await assert.rejects(
        connecting.then(async (bus) => {
          await bus.close();
          return bus;
        }),
        (error: unknown) => {
          assert.ok(error instanceof NotSentError, String(error));
          assert.match(error.message, new RegExp(`cannot connect to the broker at ${kit.broker.tlsUrl!.replace(/[.]/g, '\\.')}: .*self[- ]signed certificate`));
          return true;
        },
      );
    });

    if (kind === 'aedes') {
      it('embedded broker - a web page from another origin is refused at the WebSocket port; allowed origins and programs are not', async () => {
        await using broker = await startEmbeddedBroker({ port: false, wsPort: 0, wsOrigins: ['https://ui.example'] });
        const opens = (origin?: string) =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(broker.wsUrl!, 'mqtt', origin ? { origin } : {});
            socket.once('open', () => {
              socket.close();
              resolve('open');
            });
            socket.once('unexpected-response', (_request, response) => {
              resolve(`refused ${response.statusCode}`);
              socket.terminate();
            });
            socket.once('error', (error) => resolve(`error ${error.message}`));
          });
        assert.equal(await opens('https://evil.example'), 'refused 401');
        assert.equal(await opens('https://ui.example'), 'open');
        assert.equal(await opens(undefined), 'open');
      });

      it('embedded broker - a busy WebSocket port is a clear start error, not a crash', async () => {
        const squatter = net.createServer();
        await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
        const busy = (squatter.address() as net.AddressInfo).port;
        try {
          await assert.rejects(startEmbeddedBroker({ port: 0, wsPort: busy }), (error: unknown) => {
            assert.ok(error instanceof BrokerStartError, String(error));
            assert.match(error.message, new RegExp(`WebSocket 127\\.0\\.0\\.1:${busy} is already in use`));
            return true;
          });
        } finally {
          squatter.close();
        }
      });

      it('embedded broker - close() does not wait for sockets that never sent CONNECT or finished a TLS handshake', { timeout: 10_000 }, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relais-close-'));
        const certificate = openssl.run ? makeTlsCertificate(dir) : undefined;
        const broker = await startEmbeddedBroker({ port: 0, ...(certificate && { tls: { cert: certificate.cert, key: certificate.key, port: 0 } }) });
        fs.rmSync(dir, { recursive: true, force: true });
        const idle = [net.connect(broker.port!, '127.0.0.1'), ...(broker.tlsPort ? [net.connect(broker.tlsPort, '127.0.0.1')] : [])];
        await Promise.all(idle.map((socket) => once(socket, 'connect')));
        const closed = Promise.all(idle.map((socket) => once(socket, 'close')));
        try {
          await within(broker.close(), 5000, 'the broker\'s close');
          await within(closed, 5000, 'the idle sockets\' close');
        } finally {
          // Left open, they would keep the test process alive after a failure.
          for (const socket of idle) socket.destroy();
        }
      });

      it('connect - a browser opening the WebSocket port as a page is told what it is (426)', async () => {
        const { status, body } = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
          http
            .get(kit.broker.wsUrl!.replace('ws://', 'http://'), (response) => {
              let body = '';
              response.on('data', (chunk: Buffer) => (body += chunk));
              response.on('end', () => resolve({ status: response.statusCode, body }));
            })
            .on('error', reject);
        });
        assert.equal(status, 426);
        assert.match(body, /MQTT-over-WebSocket endpoint/);
      });
    }
  });
}
