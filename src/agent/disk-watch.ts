/**
 * `system/disk/new_file/notification` (PSEC's `TypeEvenement.FICHIER`; docs/agent.md "Notifications"): a file that appears
 * in a watched disk is announced with `{ disk, filepath, size_in_bytes }`. A name is announced
 * when it appears as a regular file (files the agent writes appear complete, renamed from a
 * partial name; a file another program writes in place is announced when its name appears,
 * with the size it has then); the same name is announced again only after it went away.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PARTIAL_PREFIX, statExisting, type Disk } from './confine.js';
import type { ServiceContext } from './service.js';

export const NEW_FILE_CATEGORY = 'system/disk/new_file';

/** Names remembered per disk, to announce each appearance once; beyond, the oldest are forgotten. */
const MAX_REMEMBERED = 10_000;

export class DiskWatcher {
  private readonly watchers: fs.FSWatcher[] = [];
  private readonly present = new Map<string, Set<string>>();

  constructor(
    private readonly disks: Disk[],
    private readonly context: ServiceContext,
  ) {}

  start(): void {
    for (const disk of this.disks) {
      this.present.set(disk.id, new Set());
      let watcher: fs.FSWatcher;
      try {
        watcher = fs.watch(disk.root, { recursive: true, persistent: false });
      } catch (error) {
        this.context.reportError('disks', `cannot watch disk ${disk.id}: ${(error as Error).message}`);
        continue;
      }
      // 'rename' is a name appearing or going; 'change' (content written) announces nothing.
      watcher.on('change', (event, filename) => {
        if (event === 'rename' && typeof filename === 'string') void this.onChange(disk, filename.split(path.sep).join('/'));
      });
      watcher.on('error', (error) => this.context.reportError('disks', `watching disk ${disk.id} failed: ${error.message}`));
      this.watchers.push(watcher);
    }
  }

  private async onChange(disk: Disk, filepath: string): Promise<void> {
    if (path.posix.basename(filepath).startsWith(PARTIAL_PREFIX)) return;
    const seen = this.present.get(disk.id)!;
    const stat = await statExisting(disk, filepath).catch(() => undefined);
    if (!stat?.isFile()) {
      seen.delete(filepath);
      return;
    }
    if (seen.has(filepath)) return;
    if (seen.size >= MAX_REMEMBERED) seen.delete(seen.values().next().value!);
    seen.add(filepath);
    try {
      this.context.bus.notify(NEW_FILE_CATEGORY, { disk: disk.id, filepath, size_in_bytes: stat.size });
    } catch (error) {
      this.context.logger.warn({ disk: disk.id, filepath, err: (error as Error).message }, 'new_file notification not sent');
    }
  }

  stop(): void {
    for (const watcher of this.watchers.splice(0)) watcher.close();
  }
}
