/**
 * The PSEC disks catalogue (its "Liste des topics"; docs/agent.md "Disks catalogue"): a disk is a
 * configured directory, every path confined to it (confine.ts). Success answers carry
 * PSEC's shapes; a refusal or a failure is an error response, code 1, whose message says why
 * (`details: { status: "error", reason }`).
 */
import fs from 'node:fs';
import { z } from 'zod';
import { fromBase64 } from '../protocol/binary.js';
import type { DisksConfig } from './config.js';
import { DiskError, DiskFolder, openForWriting, PARTIAL_PREFIX, removeFile, statExisting, type Disk } from './confine.js';
import { copyBetweenDisks, footprintOf } from './disk-io.js';
import { DiskWatcher, NEW_FILE_CATEGORY } from './disk-watch.js';
import { reportingFailures, typed, type AgentService, type Component, type ServiceContext, type TypedAction } from './service.js';

const diskId = z.string().min(1).max(64);
const filepath = z.string().min(1);
/** PSEC's shapes of payloads and answers (its "Liste des topics"), as contracts (protocol §7.6). */
const schemas = {
  listFiles: z.object({ disk: diskId }),
  onDisk: z.object({ disk: diskId, filepath }),
  betweenDisks: z.object({ source_disk: diskId, filepath, target_disk: diskId }),
  toRepository: z.object({ source_disk: diskId, filepath }),
  create: z.object({ disk: diskId, filepath, data: z.union([z.string(), z.object({ $base64: z.string() })]) }),
  ok: z.object({ status: z.literal('ok') }),
  disks: z.object({ disks: z.array(z.object({ label: z.string(), id: z.string() })) }),
  files: z.object({
    disk: z.string(),
    files: z.array(z.object({ path: z.string(), size: z.number().int().min(0), name: z.string(), type: z.enum(['file', 'folder']) })),
    truncated: z.literal(true).optional(),
  }),
  footprint: z.object({ footprint: z.string().regex(/^[0-9a-f]{64}$/) }),
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

  const handlers: Record<string, TypedAction> = {
    [DISK_ACTIONS.listDisks]: {
      description: 'the disks of this agent (PSEC LISTE_DISQUES)',
      output: schemas.disks,
      handler: () => ({ disks: [...disks.values()].map((disk) => ({ label: disk.label, id: disk.id })) }),
    },

    [DISK_ACTIONS.listFiles]: typed('the files and folders of a disk', schemas.listFiles, schemas.files, async ({ disk: id }) => {
      const disk = diskNamed(id);
      const files: FileEntry[] = [];
      const root = await DiskFolder.root(disk);
      const truncated = await listFolder(root, '', files, config.maxListEntries).finally(() => root.close());
      return { disk: disk.id, files, ...(truncated && { truncated: true as const }) };
    }),

    [DISK_ACTIONS.readFile]: typed('copies a file into the local repository disk, then announces it (system/disk/new_file)', schemas.toRepository, schemas.ok, async (request, ctx) => {
      if (config.repository === undefined) throw new DiskError('this agent has no local repository (services.disks.repository)', 'no-repository');
      const repository = diskNamed(config.repository);
      const bytes = await copyBetweenDisks(diskNamed(request.source_disk), repository, request.filepath, ctx);
      // The file is now in the local repository: say so, as PSEC's FICHIER event does.
      context.bus.notify(NEW_FILE_CATEGORY, { disk: repository.id, filepath: request.filepath, size_in_bytes: bytes });
      return ok;
    }),

    [DISK_ACTIONS.copyFile]: typed('copies a file from one disk to another, streamed, with progress', schemas.betweenDisks, schemas.ok, async (request, ctx) => {
      await copyBetweenDisks(diskNamed(request.source_disk), diskNamed(request.target_disk), request.filepath, ctx);
      return ok;
    }),

    [DISK_ACTIONS.removeFile]: typed('removes a regular file from a read-write disk', schemas.onDisk, schemas.ok, async (request) => {
      await removeFile(diskNamed(request.disk), request.filepath);
      return ok;
    }),

    [DISK_ACTIONS.footprint]: typed('the SHA-256 of a file, hex', schemas.onDisk, schemas.footprint, async (request, ctx) => ({
      footprint: await footprintOf(diskNamed(request.disk), request.filepath, ctx.signal),
    })),

    [DISK_ACTIONS.createFile]: typed('writes a file (data: text, or {$base64}); never visible half-written', schemas.create, schemas.ok, async (request) => {
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
    }),
  };

  const actions = Object.fromEntries(Object.entries(handlers).map(([action, served]) => [action, { ...served, handler: reportingFailures('disks', action, served.handler, context) }]));
  return {
    name: 'disks',
    actions,
    start: () => watcher.start(),
    stop: () => watcher.stop(),
    components: (): Component[] => [...disks.values()].map((disk) => ({ id: `disk:${disk.id}`, label: disk.label, type: 'disk' })),
  };
}

/**
 * Lists a folder (held open) and its sub-folders, at most `max` entries (true when cut).
 * Sub-folders are opened inside it, never through a symlink; symlinks are listed as what
 * they point to when that is inside the disk, and not followed into folders (no loops);
 * devices, FIFOs, sockets and partial files are left out.
 */
export async function listFolder(folder: DiskFolder, relative: string, files: FileEntry[], max: number): Promise<boolean> {
  const entries = await fs.promises.readdir(folder.at(), { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.name.startsWith(PARTIAL_PREFIX)) continue;
    if (files.length >= max) return true;
    const entryPath = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      files.push({ path: entryPath, size: 0, name: entry.name, type: 'folder' });
      // Gone, unreadable, or swapped for a symlink since it was read: listed, not entered.
      const child = await folder.child(entry.name, entryPath).catch(() => undefined);
      if (!(child instanceof DiskFolder)) continue;
      const cut = await listFolder(child, entryPath, files, max).finally(() => child.close());
      if (cut) return true;
    } else if (entry.isFile()) {
      const stat = await fs.promises.lstat(folder.at(entry.name)).catch(() => undefined);
      if (stat?.isFile()) files.push({ path: entryPath, size: stat.size, name: entry.name, type: 'file' });
    } else if (entry.isSymbolicLink()) {
      const stat = await statExisting(folder.disk, entryPath).catch(() => undefined);
      if (stat?.isFile()) files.push({ path: entryPath, size: stat.size, name: entry.name, type: 'file' });
      else if (stat?.isDirectory()) files.push({ path: entryPath, size: 0, name: entry.name, type: 'folder' });
    }
  }
  return false;
}
