/**
 * Client B of the real-time scenario in its own process, so the sender's work (JSON of
 * 64 KiB messages, socket writes) does not share B's event loop. Started by
 * bench/scenarios/realtime.ts with an IPC channel; argv[2] is `{ url, variant }`.
 *
 * To the parent: `{ type: 'ready' }`, `{ type: 'bulk', bulk }` on each bulk message (the
 * sender's window), `{ type: 'report', bulk, latencies }` when asked. From the parent:
 * `{ type: 'reset' }` (forget the latencies so far), `{ type: 'report' }`, `{ type: 'close' }`.
 * It exits when told to close or when the parent goes away.
 */
import { now, wireReceiver, type Variant } from './lib/realtime-wiring.js';

const { url, variant } = JSON.parse(process.argv[2] ?? '{}') as { url: string; variant: Variant };
const send = (message: unknown) => process.send?.(message);

let bulk = 0;
let latencies: number[] = [];
const end = await wireReceiver(
  url,
  variant,
  () => {
    bulk++;
    send({ type: 'bulk', bulk });
  },
  (payload) => latencies.push(now() - payload.t),
);

let closing = false;
const close = () => {
  if (closing) return;
  closing = true;
  const forced = setTimeout(() => process.exit(0), 5000);
  forced.unref();
  void end.close().finally(() => {
    clearTimeout(forced);
    process.disconnect?.();
  });
};

process.on('message', (message: { type: string }) => {
  if (message.type === 'reset') {
    latencies = [];
    send({ type: 'reset-done' });
  } else if (message.type === 'report') {
    send({ type: 'report', bulk, latencies });
  } else if (message.type === 'close') {
    close();
  }
});
process.on('disconnect', close);
send({ type: 'ready' });
