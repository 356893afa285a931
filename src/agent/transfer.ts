/**
 * File transfer (issue 8 §3, seed 002 SENDFILES; docs/agent.md "File transfer"): the agent
 * service of `relais send` (put_*) and `relais fetch` (get_*), on the disks of the disks
 * service, every path confined the same way (confine.ts). The wire is transfer-protocol.ts.
 */
import type { z } from 'zod';
import type { HandleOptions, Handler } from '../client/index.js';
import type { DisksConfig, TransferConfig } from './config.js';
import { DiskError, type Disk } from './confine.js';
import { resolveDisks } from './disks.js';
import { reportingFailures, type AgentService, type ServiceContext } from './service.js';
import { Downloads } from './transfer-downloads.js';
import { TRANSFER_ACTIONS, transferSchemas } from './transfer-protocol.js';
import { Uploads } from './transfer-uploads.js';

export type TransferSettings = Pick<TransferConfig, 'maxFileBytes' | 'chunkBytes' | 'window' | 'idleTimeout' | 'maxTransfers'>;

type Input<K extends keyof typeof transferSchemas> = z.infer<(typeof transferSchemas)[K]['input']>;

export function transferService(config: TransferConfig, disksConfig: DisksConfig, context: ServiceContext): AgentService {
  const disks = resolveDisks(disksConfig);
  const logger = context.logger.child({ service: 'transfer' });
  const uploads: Uploads = new Uploads(config, logger, () => downloads.open);
  const downloads: Downloads = new Downloads({ ...config, maxListEntries: disksConfig.maxListEntries }, logger, () => uploads.open);
  const diskNamed = (id: string): Disk => {
    const disk = disks.get(id);
    if (!disk) throw new DiskError(`no disk named ${id} (disks: ${[...disks.keys()].join(', ') || 'none'})`, 'unknown-disk');
    return disk;
  };

  const handlers: Record<string, Handler> = {
    [TRANSFER_ACTIONS.putBegin]: (payload, ctx) => {
      const request = payload as Input<'putBegin'>;
      return uploads.begin({ ...request, disk: diskNamed(request.disk) }, ctx.source);
    },
    [TRANSFER_ACTIONS.putChunk]: (payload) => uploads.chunk(payload as Input<'putChunk'>),
    [TRANSFER_ACTIONS.putEnd]: (payload) => uploads.end(payload as Input<'putEnd'>),
    [TRANSFER_ACTIONS.getBegin]: (payload, ctx) => {
      const request = payload as Input<'getBegin'>;
      return downloads.begin(diskNamed(request.disk), request.filepath, ctx.source, ctx.signal);
    },
    [TRANSFER_ACTIONS.getChunk]: (payload) => downloads.chunk(payload as Input<'getChunk'>),
    [TRANSFER_ACTIONS.getEnd]: (payload) => downloads.end((payload as Input<'getEnd'>).transfer),
  };

  const descriptions: Record<string, string> = {
    [TRANSFER_ACTIONS.putBegin]: 'begin (or resume) writing a file to a disk: answers the offset to continue from',
    [TRANSFER_ACTIONS.putChunk]: 'write the next chunk (Base64) of a file being sent, at the offset the receiver expects',
    [TRANSFER_ACTIONS.putEnd]: 'check the SHA-256 of a sent file, sync it and move it under its final name',
    [TRANSFER_ACTIONS.getBegin]: 'open a file of a disk to be fetched (its size and SHA-256), or list the files of a folder',
    [TRANSFER_ACTIONS.getChunk]: 'read a range of a file being fetched, as Base64',
    [TRANSFER_ACTIONS.getEnd]: 'close a file being fetched',
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
    async stop() {
      await Promise.all([uploads.close(), downloads.close()]);
    },
  };
}
