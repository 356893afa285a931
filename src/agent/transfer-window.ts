/**
 * The window of a transfer (docs/agent.md "File transfer"): up to `window` chunk requests in
 * flight, consumed in order as each is acknowledged, so memory is bounded by window × chunk.
 * The first failure, or the connection dropping, cancels the others and ends the window:
 * the caller then begins again from the receiver's offset (transfer-client.ts).
 */
import type { Bus } from '../client/index.js';
import { chunksFrom } from './transfer-protocol.js';

/** Moves one chunk: resolves with its length (sent) or its bytes (fetched). */
export type ChunkRequest = (chunk: { offset: number; length: number }, signal: AbortSignal) => Promise<number | Buffer>;

/** The connection dropped while chunks were in flight: they are given up, and the transfer begins again. */
export class LostConnection extends Error {
  override name = 'LostConnection';
}

/**
 * Moves the chunks of [start, size) and returns the bytes moved. `consume` gets each fetched
 * chunk, in order, before the next is counted as moved.
 */
export async function moveWindow(
  bus: Bus,
  start: number,
  size: number,
  shape: { chunkBytes: number; window: number },
  request: ChunkRequest,
  moved: (bytes: number) => void,
  signal?: AbortSignal,
  consume?: (bytes: Buffer, offset: number) => Promise<void>,
): Promise<number> {
  const controller = new AbortController();
  let lost = false;
  const onOffline = () => {
    lost = true;
    controller.abort(new LostConnection('the connection to the broker was lost'));
  };
  const onAbort = () => controller.abort(signal!.reason);
  if (!bus.connected) onOffline();
  bus.on('offline', onOffline);
  signal?.addEventListener('abort', onAbort, { once: true });
  const inFlight: Array<{ offset: number; answer: Promise<number | Buffer> }> = [];
  let total = 0;
  const settleHead = async () => {
    const head = inFlight.shift()!;
    const answer = await head.answer;
    let length: number;
    if (typeof answer === 'number') length = answer;
    else {
      await consume?.(answer, head.offset);
      length = answer.length;
    }
    total += length;
    moved(length);
  };
  try {
    for (const chunk of chunksFrom(start, size, shape.chunkBytes)) {
      controller.signal.throwIfAborted();
      while (inFlight.length >= shape.window) await settleHead();
      const answer = request(chunk, controller.signal);
      answer.catch(() => {}); // awaited in its turn; marked handled so a later one failing first is not "unhandled"
      inFlight.push({ offset: chunk.offset, answer });
    }
    while (inFlight.length > 0) await settleHead();
    return total;
  } catch (error) {
    if (!controller.signal.aborted) controller.abort(error);
    await Promise.allSettled(inFlight.map((entry) => entry.answer));
    throw lost ? new LostConnection('the connection to the broker was lost', { cause: error }) : error;
  } finally {
    bus.off('offline', onOffline);
    signal?.removeEventListener('abort', onAbort);
  }
}
