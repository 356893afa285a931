/**
 * The folder that holds the history database (`relais start --data-dir`), on a small tmpfs of
 * its own so the soak can fill it: `fill()` writes a filler file until the file system says
 * ENOSPC, `free()` removes it. Mounting needs root; without it (or when mount fails) the folder
 * is a plain one and the disk-full fault is skipped, loudly, with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface HistoryDisk {
  dir: string;
  /** Why the disk cannot be filled (no tmpfs); undefined when it can. */
  skipReason?: string;
  /** Fills the file system; resolves with the bytes the filler took. */
  fill(): number;
  free(): void;
  /** Unmounts (after every process using it has stopped). */
  close(): void;
}

const FILLER = '.soak-filler';

export function prepareHistoryDisk(dir: string, sizeMb: number): HistoryDisk {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  let skipReason: string | undefined;
  if (process.getuid?.() !== 0) skipReason = 'mounting a tmpfs needs root';
  else {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'relais-soak-history', dir], { stdio: 'pipe' });
    } catch (error) {
      skipReason = `mount -t tmpfs failed: ${((error as { stderr?: Buffer }).stderr ?? '').toString().trim() || (error as Error).message}`;
    }
  }
  const filler = path.join(dir, FILLER);
  return {
    dir,
    ...(skipReason && { skipReason }),
    fill() {
      if (skipReason) return 0;
      const fd = fs.openSync(filler, 'a');
      let written = 0;
      try {
        // Big blocks first, then small ones: the last free pages are taken too.
        for (const block of [Buffer.alloc(1 << 20), Buffer.alloc(4096)]) {
          for (;;) {
            try {
              written += fs.writeSync(fd, block);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw error;
            }
          }
        }
      } finally {
        fs.closeSync(fd);
      }
      return written;
    },
    free() {
      fs.rmSync(filler, { force: true });
    },
    close() {
      if (skipReason) return;
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      }
    },
  };
}
