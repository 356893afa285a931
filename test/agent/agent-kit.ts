/** An agent on a real embedded broker for the agent tests, with its log lines observable as events. */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { parseAgentConfig } from '../../src/agent/config.js';
import type { Bus, ReceivedMessage } from '../../src/index.js';
import { setup, uniqueId, type Kit } from '../testkit/index.js';

export interface AgentKit {
  kit: Kit;
  agent: Agent;
  /** A client that calls the agent. */
  caller: Bus;
  /** The agent's log lines, parsed; `logEvents` emits `line` for each. */
  logs: Array<Record<string, unknown>>;
  logEvents: EventEmitter;
  cleanup(): Promise<void>;
}

/** A fresh temporary folder of this branch's tests. */
export function tempDir(name: string): string {
  const base = path.join(os.tmpdir(), 'agent-helper');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `${name}-`));
}

export async function startAgentKit(config: unknown): Promise<AgentKit> {
  const kit = await setup('aedes');
  const logs: Array<Record<string, unknown>> = [];
  const logEvents = new EventEmitter();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
        logEvents.emit('line');
      }
      done();
    },
  });
  const id = uniqueId('agent');
  const agent = await startAgent({ id, config: parseAgentConfig(config), logger: pino({ level: 'debug' }, sink), connection: { broker: kit.broker.url } });
  const caller = await kit.connect(uniqueId('caller'));
  await caller.waitForHandler('system/components/discover', { target: id, timeout: 5000 });
  return {
    kit,
    agent,
    caller,
    logs,
    logEvents,
    async cleanup() {
      await agent.close();
      await kit.cleanup();
    },
  };
}

/** Collects the notifications of `category` the caller sees. */
export async function collectNotifications(bus: Bus, category: string): Promise<{ received: ReceivedMessage[]; events: EventEmitter }> {
  const received: ReceivedMessage[] = [];
  const events = new EventEmitter();
  await bus.subscribe(`${category}/notification`, (message) => {
    received.push(message);
    events.emit('message');
  });
  return { received, events };
}

/** Whether a process has ended (gone, or a zombie nobody has reaped yet). */
export function ended(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Every entry under `root`, as paths relative to it, without following symlinks (Node 20's recursive readdir follows them). */
export function entriesUnder(root: string): Map<string, 'folder' | 'symlink' | 'file'> {
  const found = new Map<string, 'folder' | 'symlink' | 'file'>();
  const walk = (folder: string, prefix: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      found.set(relative, entry.isDirectory() ? 'folder' : entry.isSymbolicLink() ? 'symlink' : 'file');
      if (entry.isDirectory()) walk(path.join(folder, entry.name), relative);
    }
  };
  walk(root, '');
  return found;
}

/**
 * Resolves whether `pid` has ended within `timeout` ms. A signal to a process group reaches
 * every member at once, but on a loaded machine a member may run its exit a moment after the
 * group's leader was reaped; /proc has no event to wait on, so it is looked at every 20 ms.
 */
export async function endsWithin(pid: number, timeout = 5000): Promise<boolean> {
  const end = Date.now() + timeout;
  while (!ended(pid)) {
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}
