/**
 * A requester frozen or starved (protocol §4.7): while its event loop is busy past the wait
 * for an acknowledgement, the handler takes the command and its acknowledgement reaches the
 * requester's socket. On waking, the requester must read what has arrived before it decides
 * that no answer came: moving the request to another handler would run it twice.
 *
 * The broker and the two handlers run in processes of their own, so that they go on while
 * this one is frozen; the freeze lasts until the acknowledgement is waiting in this process's
 * socket (read from /proc/net/tcp, Linux) and the wait has passed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, type Bus } from '../../src/index.js';
import { eachLine, startBrokerProcess, type BrokerProcess } from '../testkit/broker-process.js';
import { recordingLogger, uniqueId, waitFor } from '../testkit/index.js';

const HANDLER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/handler-process.ts');
const ACK_TIMEOUT = 300;
const WORK_MS = 500;
const onLinux = existsSync('/proc/net/tcp');

/** Bytes received and not read yet by this process's TCP sockets connected to `port` (Linux). */
function unreadBytesFrom(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (socket) inodes.add(socket[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let unread = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue;
      if (Number.parseInt(fields[2]!.split(':')[1]!, 16) === port) unread += Number.parseInt(fields[4]!.split(':')[1]!, 16);
    }
  }
  return unread;
}

describe('frozen requester', { timeout: 120_000, skip: onLinux ? false : 'reads /proc/net/tcp (Linux)' }, () => {
  let broker: BrokerProcess;
  const handlers: Array<{ id: string; child: ChildProcess }> = [];
  /** `RUN <requester> <token>` lines of the handlers: each execution. */
  const runs: string[] = [];
  const ran = new EventEmitter();
  let bus: Bus;
  const log = recordingLogger();

  before(async () => {
    broker = await startBrokerProcess();
    for (let n = 0; n < 2; n++) {
      const id = uniqueId('worker');
      const child = spawn(process.execPath, ['--import', 'tsx', HANDLER, broker.url, id, String(WORK_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        eachLine(child.stdout!, (line) => {
          if (line === 'READY') resolve();
          else if (line.startsWith('RUN ')) {
            runs.push(`${line} on ${id}`);
            ran.emit('run');
          }
        });
        child.once('exit', (code) => reject(new Error(`handler ${id} exited (${code}) before it was ready`)));
      });
      handlers.push({ id, child });
    }
    bus = await connect({ id: uniqueId('frozen'), broker: broker.url, ackTimeout: ACK_TIMEOUT, realtimeLane: false, logger: log.logger });
    await waitFor(() => (bus.directory.providers('demo/work').size === 2 ? true : undefined), bus.directory, 'change', 30_000);
  });

  after(async () => {
    await bus?.close();
    for (const { child } of handlers) child.kill('SIGTERM');
    await broker?.stop();
  });

  it('acks - a requester frozen past the wait reads the acknowledgement already in its socket before suspecting the handler: the command runs once', async () => {
    // Its responses are subscribed to (the first request of an action waits for the SUBACK).
    await bus.request('demo/work', { n: 0 }, { timeout: 30_000 });
    const token = uniqueId('tok');
    const answer = bus.request('demo/work', { n: 1 }, { token, timeout: 30_000 });
    await new Promise((resolve) => setImmediate(resolve)); // the command leaves (MQTT.js writes on the next tick)
    const port = Number(new URL(broker.url).port);
    const frozenAt = Date.now();
    // Frozen, as a starved process is, until the wait has passed and the acknowledgement waits unread.
    while (Date.now() - frozenAt < 30_000 && !(Date.now() - frozenAt > 3 * ACK_TIMEOUT && unreadBytesFrom(port) > 0));
    assert.ok(Date.now() - frozenAt < 30_000, 'the acknowledgement reached the socket while frozen');
    assert.equal(((await answer) as { n: number }).n, 1);
    const executions = () => runs.filter((line) => line.includes(` ${token} `));
    await waitFor(() => (executions().length > 0 ? true : undefined), ran, 'run');
    assert.deepEqual(executions().length, 1, `ran ${executions().join('; ')}`);
    assert.deepEqual(log.lines.filter((line) => line.includes('request sent to another handler')), [], 'not moved');
  });
});
