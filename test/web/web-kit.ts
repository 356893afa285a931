/** Helpers of the web tests: JSON over real HTTP, a Server-Sent Events reader, polling a token's rows. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** One HTTP request; `body` is sent as JSON unless it is a string (sent as is). */
export async function http(method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url, { method, headers, ...(body !== undefined && { body }) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Polls `read` until `done` says so (as an HTTP client polling a token would), or fails after `timeout` ms. */
export async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeout = 15_000): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeout} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface SseMessage {
  id?: string;
  event?: string;
  data: any;
}

/** Reads a Server-Sent Events stream: `next(check)` resolves with the first new message `check` accepts. */
export async function openStream(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const messages: SseMessage[] = [];
  const waiters = new Set<() => void>();
  const decoder = new TextDecoder();
  let buffer = '';
  const pump = (async () => {
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: Partial<SseMessage> = {};
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) message.id = line.slice(4);
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue; // comments and retry
          messages.push({ ...message, data: JSON.parse(data.join('\n')) });
          for (const wake of waiters) wake();
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    response,
    messages,
    /** Resolves once `check(messages)` is true. */
    until(check: (messages: SseMessage[]) => boolean, timeout = 10_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const test = () => {
          if (!check(messages)) return;
          clearTimeout(timer);
          waiters.delete(test);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(test);
          reject(new Error(`stream: condition not met within ${timeout} ms; got ${JSON.stringify(messages.slice(-5))}`));
        }, timeout);
        waiters.add(test);
        test();
      });
    },
    async close() {
      controller.abort();
      await pump;
    },
  };
}

/** A fresh temporary folder of these tests. */
export function tempDir(name: string): string {
  const base = path.join(os.tmpdir(), 'webapi-helper');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `${name}-`));
}
