/**
 * Moleculer 0.14 at its defaults (JSON serializer, its own discovery and heartbeats, no
 * request time-out, QoS 0 with the MQTT transporter): a service `echo` with an action `echo`
 * in the handler node, `broker.call('echo.echo', payload)` from the requester node. The
 * transporter is the URL: `mqtt://…` (MQTT transporter) or `nats://…` (NATS transporter).
 */
import { ServiceBroker } from 'moleculer';
import { runPeer, type PeerArgs } from './child.js';

function node({ url, id }: PeerArgs): ServiceBroker {
  // Warnings only, and on stderr (console.warn): stdout carries the protocol lines.
  return new ServiceBroker({ nodeID: id, transporter: url, logLevel: 'warn' });
}

await runPeer({
  async requester(args) {
    const broker = node(args);
    await broker.start();
    await broker.waitForServices(['echo'], 15_000);
    return {
      send: (payload) => broker.call('echo.echo', payload),
      close: () => broker.stop(),
    };
  },
  async handler(args) {
    const broker = node(args);
    let served = 0;
    broker.createService({
      name: 'echo',
      actions: {
        echo(ctx) {
          served++;
          return ctx.params;
        },
      },
    });
    await broker.start();
    return { served: () => served, close: () => broker.stop() };
  },
});
