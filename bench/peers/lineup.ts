/**
 * Starting and stopping everything the peers benchmark runs: the broker processes, then for
 * each contender its handler process and its requester process. Whatever was started is
 * tracked so that it is ended on the way out, interruptions included; `leftovers()` names
 * any process that is still there afterwards.
 */
import fs from 'node:fs';
import { log } from '../lib/util.js';
import { startPeerBroker, type PeerBroker, type PeerBrokerKind } from './brokers.js';
import { processId, type Contender } from './contenders.js';
import { PeerProcess } from './process.js';
import { killAll } from './reaper.js';

export interface Running {
  contender: Contender;
  broker?: PeerBroker;
  requester: PeerProcess;
  handler: PeerProcess;
}

export class Lineup {
  readonly brokers = new Map<PeerBrokerKind, PeerBroker>();
  readonly running: Running[] = [];
  /** Why a contender could not start. */
  readonly failedToStart = new Map<string, string>();
  private readonly pids = new Set<number>();
  private readonly processes = new Set<PeerProcess>();

  /** Starts the brokers the contenders need (one process per kind, shared by its contenders), then the contenders, two at a time. */
  async start(contenders: Contender[]): Promise<void> {
    const kinds = [...new Set(contenders.flatMap((contender) => (contender.broker ? [contender.broker] : [])))];
    const brokerErrors = new Map<PeerBrokerKind, string>();
    for (const kind of kinds) {
      try {
        const broker = await startPeerBroker(kind);
        this.brokers.set(kind, broker);
        this.pids.add(broker.pid);
        log(`peers: broker ${broker.label} on ${broker.url} (pid ${broker.pid})`);
      } catch (error) {
        brokerErrors.set(kind, (error as Error).message);
        log(`peers: broker ${kind} did not start: ${(error as Error).message}`);
      }
    }
    const queue = [...contenders];
    const next = async (): Promise<void> => {
      for (let contender = queue.shift(); contender; contender = queue.shift()) {
        const brokerError = contender.broker && brokerErrors.get(contender.broker);
        if (brokerError) {
          this.failedToStart.set(contender.id, `its broker did not start: ${brokerError}`);
          continue;
        }
        try {
          this.running.push(await this.startContender(contender));
        } catch (error) {
          this.failedToStart.set(contender.id, (error as Error).message);
          log(`peers: ${contender.id} did not start: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all([next(), next()]);
    // Table order, whatever order they became ready in.
    this.running.sort((a, b) => contenders.indexOf(a.contender) - contenders.indexOf(b.contender));
  }

  private async startContender(contender: Contender): Promise<Running> {
    const broker = contender.broker ? this.brokers.get(contender.broker) : undefined;
    const handlerId = processId(contender, 'h');
    const handlerUrl = (await broker?.urlFor?.(handlerId, 'handler')) ?? broker?.url ?? '';
    const handler = await this.spawn(`${contender.id} handler`, contender.handlerFile ?? contender.file, ['handler', '--url', handlerUrl, '--id', handlerId, ...contender.args], contender.env);
    try {
      const url = (await broker?.urlFor?.(processId(contender, 'r'), 'requester')) ?? broker?.url ?? handler.url;
      if (!url) throw new Error('no broker and the handler gave no url');
      const requester = await this.spawn(`${contender.id} requester`, contender.requesterFile ?? contender.file, ['requester', '--url', url, '--id', processId(contender, 'r'), '--peer', handlerId, ...contender.args], contender.env);
      return { contender, ...(broker && { broker }), requester: requester.peer, handler: handler.peer };
    } catch (error) {
      await handler.peer.close(2000);
      throw error;
    }
  }

  private async spawn(label: string, file: string, args: string[], env?: Record<string, string>): Promise<{ peer: PeerProcess; url?: string }> {
    const { peer, ready } = await PeerProcess.start(label, file, args, undefined, env);
    this.processes.add(peer);
    this.pids.add(peer.pid);
    return { peer, ...(ready.url && { url: ready.url }) };
  }

  /** Ends one contender's two processes; their last lines (totals, served) are returned. */
  async stopContender(running: Running): Promise<{ requester?: Awaited<ReturnType<PeerProcess['close']>>; handler?: Awaited<ReturnType<PeerProcess['close']>> }> {
    const [requester, handler] = await Promise.all([running.requester.close(), running.handler.close()]);
    this.processes.delete(running.requester);
    this.processes.delete(running.handler);
    return { requester, handler };
  }

  /** Ends every process still running, then the brokers. */
  async stop(): Promise<void> {
    await Promise.all([...this.processes].map((peer) => peer.close()));
    this.processes.clear();
    await Promise.all([...this.brokers.values()].map((broker) => broker.close().catch(() => {})));
    this.brokers.clear();
  }

  /** For an interruption: SIGKILL every child now, those still starting included, then tidy up as usual. */
  async abort(): Promise<void> {
    killAll();
    await this.stop();
  }

  /** Pids this lineup started that are still alive (not even a zombie should be left: all are waited for). */
  leftovers(): number[] {
    return [...this.pids].filter((pid) => fs.existsSync(`/proc/${pid}`));
  }

  get started(): number {
    return this.pids.size;
  }
}
