/**
 * File transfer (Gorgone's SENDFILES; docs/agent.md "File transfer"): the agent
 * service of `relais send` (put_*) and `relais fetch` (get_*), on the disks of the disks
 * service, every path confined the same way (confine.ts). The wire is transfer-protocol.ts.
 */
import { identityOfClientId } from '../protocol/topics.js';
import type { z } from 'zod';
import type { HandleOptions, Handler } from '../client/index.js';
import type { DisksConfig, TransferConfig } from './config.js';
import { DiskError, type Disk } from './confine.js';
import { resolveDisks } from './disks.js';
import { reportingFailures, type AgentService, type ServiceContext } from './service.js';
import { Downloads } from './transfer-downloads.js';
import { TransferSlots } from './transfer-limits.js';
import { TRANSFER_ACTIONS, transferSchemas } from './transfer-protocol.js';
import { removeStalePartials } from './transfer-sweep.js';
import { Uploads } from './transfer-uploads.js';

export type TransferSettings = Pick<
  TransferConfig,
  'maxFileBytes' | 'chunkBytes' | 'window' | 'idleTimeout' | 'stallTimeout' | 'maxTransfers' | 'maxTransfersPerIdentity' | 'maxBytesPerIdentity'
>;

type Input<K extends keyof typeof transferSchemas> = z.infer<(typeof transferSchemas)[K]['input']>;

export function transferService(config: TransferConfig, disksConfig: DisksConfig, context: ServiceContext): AgentService {
  const disks = resolveDisks(disksConfig);
  const logger = context.logger.child({ service: 'transfer' });
  // One count of slots for both directions, in all and per identity (docs/agent.md "Limits").
  const slots = new TransferSlots(config);
  const uploads = new Uploads(config, logger, slots);
  const downloads = new Downloads({ ...config, maxListEntries: disksConfig.maxListEntries }, logger, slots);
  const diskNamed = (id: string): Disk => {
    const disk = disks.get(id);
    if (!disk) throw new DiskError(`no disk named ${id} (disks: ${[...disks.keys()].join(', ') || 'none'})`, 'unknown-disk');
    return disk;
  };

  // A transfer belongs to its requester's identity: the identity of the envelope `source`, a
  // client id (never the `~rt` lane's), which the broker holds to the connection's identity
  // when security is on (docs/security.md). All the sessions of an identity are one owner
  // (protocol §2.1): a second `relais send`, a session of its own, resumes the first one's
  // partial file. Without security it is only what the requester says.
  const owner = (ctx: { source: string }) => identityOfClientId(ctx.source);
  const handlers: Record<string, Handler> = {
    [TRANSFER_ACTIONS.putBegin]: (payload, ctx) => {
      const request = payload as Input<'putBegin'>;
      return uploads.begin({ ...request, disk: diskNamed(request.disk) }, owner(ctx));
    },
    [TRANSFER_ACTIONS.putChunk]: (payload, ctx) => uploads.chunk(payload as Input<'putChunk'>, owner(ctx)),
    [TRANSFER_ACTIONS.putEnd]: (payload, ctx) => uploads.end(payload as Input<'putEnd'>, owner(ctx)),
    [TRANSFER_ACTIONS.getBegin]: (payload, ctx) => {
      const request = payload as Input<'getBegin'>;
      return downloads.begin(diskNamed(request.disk), request.filepath, owner(ctx), ctx.signal);
    },
    [TRANSFER_ACTIONS.getChunk]: (payload, ctx) => downloads.chunk(payload as Input<'getChunk'>, owner(ctx)),
    [TRANSFER_ACTIONS.getEnd]: (payload, ctx) => downloads.end((payload as Input<'getEnd'>).transfer, owner(ctx)),
  };

  // Partial files nobody wrote for idleTimeout are swept at start and every idleTimeout after (docs/agent.md "Limits").
  const writable = [...disks.values()].filter((disk) => !disk.readOnly);
  const stopping = new AbortController(); // a sweep of a large disk does not hold up the agent's stop
  const sweep = () =>
    uploads.sweep(async (inUse) => {
      for (const disk of writable) {
        if (stopping.signal.aborted) return;
        try {
          const swept = await removeStalePartials(disk, config.idleTimeout * 1000, inUse, stopping.signal);
          logger[swept.removed > 0 ? 'info' : 'debug']({ disk: disk.id, ...swept, olderThanSeconds: config.idleTimeout }, 'stale partial files swept');
        } catch (error) {
          context.reportError('transfer', `sweeping the partial files of disk ${disk.id} failed: ${(error as Error).message}`);
        }
      }
    });
  let sweeps: NodeJS.Timeout | undefined;

  // What `relais contracts` shows of each action: what it does, and its refusals beyond the disks' (docs/agent.md "Limits").
  const descriptions: Record<string, string> = {
    [TRANSFER_ACTIONS.putBegin]:
      'begin (or resume) writing a file to a disk: answers the offset to continue from. The upload is yours (your identity and the transfer id): ' +
      'code 8 when the agent (maxTransfers), your identity (maxTransfersPerIdentity) or your open uploads\' sizes (maxBytesPerIdentity) are at their limit; ' +
      'code 1 too-large over maxFileBytes or maxBytesPerIdentity. Silent longer than stallTimeout (more as it progresses, up to idleTimeout), it is abandoned and its partial file removed',
    [TRANSFER_ACTIONS.putChunk]: 'write the next chunk of a file you are sending, at the offset the receiver expects: a binary payload, {"transfer","generation","offset","body"} LF the bytes (Base64 JSON still accepted); code 1 unknown-transfer for an upload not yours or abandoned',
    [TRANSFER_ACTIONS.putEnd]: 'check the SHA-256 of a file you sent, sync it and move it under its final name; code 1 unknown-transfer for an upload not yours or abandoned',
    [TRANSFER_ACTIONS.getBegin]: 'open a file of a disk to be fetched (its size and SHA-256), or list the files of a folder; code 8 at the same slot limits as put_begin',
    [TRANSFER_ACTIONS.getChunk]: 'read a range of a file you are fetching: answered with its bytes (a binary payload); code 1 unknown-transfer for a download not yours or abandoned',
    [TRANSFER_ACTIONS.getEnd]: 'close a file you are fetching (another identity\'s is left alone)',
  };
  const schemaOf: Record<string, { input: HandleOptions['input']; output: HandleOptions['output'] }> = {
    [TRANSFER_ACTIONS.putBegin]: transferSchemas.putBegin,
    [TRANSFER_ACTIONS.putChunk]: transferSchemas.putChunk,
    [TRANSFER_ACTIONS.putEnd]: transferSchemas.putEnd,
    [TRANSFER_ACTIONS.getBegin]: transferSchemas.getBegin,
    [TRANSFER_ACTIONS.getChunk]: transferSchemas.getChunk,
    [TRANSFER_ACTIONS.getEnd]: transferSchemas.getEnd,
  };

  return {
    name: 'transfer',
    actions: Object.fromEntries(
      Object.entries(handlers).map(([action, handler]) => [action, { ...schemaOf[action], description: descriptions[action], handler: reportingFailures('transfer', action, handler, context) }]),
    ),
    start() {
      void sweep();
      sweeps = setInterval(() => void sweep(), config.idleTimeout * 1000);
      sweeps.unref();
    },
    async stop() {
      clearInterval(sweeps);
      stopping.abort();
      await Promise.all([uploads.close(), downloads.close()]);
    },
  };
}
