/**
 * The PSEC disks catalogue (seed 001, "Liste des topics"; docs/agent.md): a disk is a
 * configured directory, every path confined to it (confine.ts). Success answers carry the
 * seed's shapes; a refusal or a failure is an error response, code 1, whose message says why
 * (`details: { status: "error", reason }`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Handler } from '../client/index.js';
import { fromBase64 } from '../protocol/binary.js';
import type { DisksConfig } from './config.js';
import { DiskError, kindOf, openForWriting, PARTIAL_PREFIX, resolveExisting, type Disk } from './confine.js';
import { copyBetweenDisks, footprintOf } from './disk-io.js';
import { DiskWatcher, NEW_FILE_CATEGORY } from './disk-watch.js';
import { parsePayload, reportingFailures, type AgentService, type Component, type ServiceContext } from './service.js';

const diskId = z.string().min(1).max(64);
const filepath = z.string().min(1);
const schemas = {
  listFiles: z.object({ disk: diskId }),
  onDisk: z.object({ disk: diskId, filepath }),
  betweenDisks: z.object({ source_disk: diskId, filepath, target_disk: diskId }),
  toRepository: z.object({ source_disk: diskId, filepath }),
  create: z.object({ disk: diskId, filepath, data: z.union([z.string(), z.object({ $base64: z.string() })]) }),
};

export interface FileEntry {
  path: string;
  size: number;
  name: string;
  type: 'file' | 'folder';
}

export const DISK_ACTIONS = {
  listDisks: 'system/disks/list_disks',
  listFiles: 'system/disks/list_files',
  readFile: 'system/disks/read_file',
  copyFile: 'system/disks/copy_file',
  removeFile: 'system/disks/remove_file',
  footprint: 'system/disks/get_file_footprint',
  createFile: 'system/disks/create_file',
} as const;

/** Resolves each configured disk's root once (symlinks in the configured path are the operator's choice). */
export function resolveDisks(config: DisksConfig): Map<string, Disk> {
  const disks = new Map<string, Disk>();
  for (const [id, disk] of Object.entries(config.disks)) {
    disks.set(id, { id, label: disk.label ?? id, root: fs.realpathSync(disk.path), readOnly: disk.readOnly, watch: disk.watch });
  }
  return disks;
}

export function disksService(config: DisksConfig, context: ServiceContext): AgentService {
  const disks = resolveDisks(config);
  const watcher = new DiskWatcher([...disks.values()].filter((disk) => disk.watch), context);
  const diskNamed = (id: string): Disk => {
    const disk = disks.get(id);
    if (!disk) throw new DiskError(`no disk named ${id} (disks: ${[...disks.keys()].join(', ') || 'none'})`, 'unknown-disk');
    return disk;
  };
  const ok = { status: 'ok' } as const;

  const handlers: Record<string, Handler> = {
    [DISK_ACTIONS.listDisks]: () => ({ disks: [...disks.values()].map((disk) => ({ label: disk.label, id: disk.id })) }),

    [DISK_ACTIONS.listFiles]: async (payload) => {
      const { disk: id } = parsePayload(schemas.listFiles, payload, DISK_ACTIONS.listFiles);
      const disk = diskNamed(id);
      const files: FileEntry[] = [];
      const truncated = await listFolder(disk, disk.root, '', files, config.maxListEntries);
      return { disk: disk.id, files, ...(truncated && { truncated: true }) };
    },

    [DISK_ACTIONS.readFile]: async (payload, ctx) => {
      const request = parsePayload(schemas.toRepository, payload, DISK_ACTIONS.readFile);
      if (config.repository === undefined) throw new DiskError('this agent has no local repository (services.disks.repository)', 'no-repository');
      const repository = diskNamed(config.repository);
      const bytes = await copyBetweenDisks(diskNamed(request.source_disk), repository, request.filepath, ctx);
      // The file is now in the local repository: say so, as the seed's FICHIER event does.
      context.bus.notify(NEW_FILE_CATEGORY, { disk: repository.id, filepath: request.filepath, size_in_bytes: bytes });
      return ok;
    },

    [DISK_ACTIONS.copyFile]: async (payload, ctx) => {
      const request = parsePayload(schemas.betweenDisks, payload, DISK_ACTIONS.copyFile);
      await copyBetweenDisks(diskNamed(request.source_disk), diskNamed(request.target_disk), request.filepath, ctx);
      return ok;
    },

    [DISK_ACTIONS.removeFile]: async (payload) => {
      const request = parsePayload(schemas.onDisk, payload, DISK_ACTIONS.removeFile);
      const disk = diskNamed(request.disk);
      if (disk.readOnly) throw new DiskError(`disk ${disk.id} is read-only`, 'read-only');
      const real = await resolveExisting(disk, request.filepath);
      const stat = await fs.promises.lstat(real);
      if (!stat.isFile()) throw new DiskError(`${request.filepath} on disk ${disk.id} is ${kindOf(stat)}: only regular files are removed`, 'not-a-file');
      await fs.promises.unlink(real);
      return ok;
    },

    [DISK_ACTIONS.footprint]: async (payload, ctx) => {
      const request = parsePayload(schemas.onDisk, payload, DISK_ACTIONS.footprint);
      return { footprint: await footprintOf(diskNamed(request.disk), request.filepath, ctx.signal) };
    },

    [DISK_ACTIONS.createFile]: async (payload) => {
      const request = parsePayload(schemas.create, payload, DISK_ACTIONS.createFile);
      let bytes: Uint8Array;
      try {
        bytes = fromBase64(request.data);
      } catch (error) {
        throw new DiskError(`data: ${(error as Error).message}`, 'invalid-data');
      }
      const file = await openForWriting(diskNamed(request.disk), request.filepath);
      try {
        await file.handle.writeFile(bytes);
      } catch (error) {
        await file.discard();
        throw error;
      }
      await file.commit();
      return ok;
    },
  };

  const actions = Object.fromEntries(Object.entries(handlers).map(([action, handler]) => [action, reportingFailures('disks', action, handler, context)]));
  return {
    name: 'disks',
    actions,
    start: () => watcher.start(),
    stop: () => watcher.stop(),
    components: (): Component[] => [...disks.values()].map((disk) => ({ id: `disk:${disk.id}`, label: disk.label, type: 'disk' })),
  };
}

/**
 * Lists a folder and its sub-folders, at most `max` entries (true when cut). Symlinks are
 * listed as what they point to when that is inside the disk, and not followed into folders
 * (no loops); devices, FIFOs, sockets and partial files are left out.
 */
export async function listFolder(disk: Disk, folder: string, relative: string, files: FileEntry[], max: number): Promise<boolean> {
  const entries = await fs.promises.readdir(folder, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith(PARTIAL_PREFIX)) continue;
    if (files.length >= max) return true;
    const entryPath = relative ? `${relative}/${entry.name}` : entry.name;
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) {
      files.push({ path: entryPath, size: 0, name: entry.name, type: 'folder' });
      if (await listFolder(disk, full, entryPath, files, max)) return true;
    } else if (entry.isFile()) {
      const stat = await fs.promises.lstat(full).catch(() => undefined);
      if (stat) files.push({ path: entryPath, size: stat.size, name: entry.name, type: 'file' });
    } else if (entry.isSymbolicLink()) {
      const target = await resolveExisting(disk, entryPath).catch(() => undefined);
      const stat = target === undefined ? undefined : await fs.promises.stat(target).catch(() => undefined);
      if (stat?.isFile()) files.push({ path: entryPath, size: stat.size, name: entry.name, type: 'file' });
      else if (stat?.isDirectory()) files.push({ path: entryPath, size: 0, name: entry.name, type: 'folder' });
    }
  }
  return false;
}
