/**
 * A log file read as `relais logs` asks (protocol §11.4; docs/agent.md "Logs"): its last lines
 * read backwards from the end, a block at a time and no further than a bound (a 50 MB file is
 * not read whole for 100 lines), and its appended lines followed, through a truncation or a
 * rotation (another file under the same name: it is read from its start).
 */
import fs from 'node:fs';

/** One line of the file and the byte offset just after it (a `next` to resume from). */
export interface FileLine {
  text: string;
  end: number;
}

const BLOCK_BYTES = 64 * 1024;
/** A line longer than this is cut to its first bytes (a binary file must not fill the memory). */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * The newest `max` complete lines that `keep` accepts, oldest first, stopping at `after` (a
 * byte offset: only lines after it) or once `maxScanBytes` were read (`truncated`).
 */
export async function tailLines(file: string, max: number, keep: (text: string) => boolean, maxScanBytes: number, after = 0): Promise<{ lines: FileLine[]; end: number; size: number; ino: number; truncated: boolean }> {
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
    const picked: FileLine[] = [];
    let position = stat.size;
    let scanned = 0;
    let carry = Buffer.alloc(0);
    // Only complete lines: what follows the last newline is still being written.
    let end = -1;
    const block = Buffer.allocUnsafe(BLOCK_BYTES);
    let truncated = false;
    while (position > after && picked.length < max) {
      if (scanned >= maxScanBytes) {
        truncated = true;
        break;
      }
      const length = Math.min(BLOCK_BYTES, position - after);
      position -= length;
      const { bytesRead } = await handle.read(block, 0, length, position);
      scanned += bytesRead;
      let data = Buffer.concat([block.subarray(0, bytesRead), carry]);
      let cut = data.length;
      for (let index = data.lastIndexOf(10, cut - 1); index >= 0 && picked.length < max; index = data.lastIndexOf(10, cut - 1)) {
        if (end < 0) end = position + index + 1;
        else {
          const text = textOf(data.subarray(index + 1, cut));
          if (keep(text)) picked.push({ text, end: position + cut + 1 });
        }
        cut = index;
        if (cut === 0) break;
      }
      data = data.subarray(0, cut);
      // The start of a line whose beginning is in an earlier block (bounded: a huge line is cut).
      carry = data.length > MAX_LINE_BYTES ? Buffer.from(data.subarray(0, MAX_LINE_BYTES)) : Buffer.from(data);
    }
    // The first line of the file (or the one just after `after`), which no newline precedes.
    if (position <= after && carry.length > 0 && end >= 0 && picked.length < max && !truncated) {
      const text = textOf(carry);
      if (keep(text)) picked.push({ text, end: after + carry.length + 1 });
    }
    return { lines: picked.reverse(), end: end < 0 ? after : end, size: stat.size, ino: stat.ino, truncated };
  } finally {
    await handle.close();
  }
}

function textOf(bytes: Buffer): string {
  return (bytes.length > MAX_LINE_BYTES ? bytes.subarray(0, MAX_LINE_BYTES) : bytes).toString('utf8').replace(/\r$/, '');
}

/**
 * Follows a file from `position`: each time it grows, its new complete lines go to `onLines` (awaited);
 * when it shrinks or is another file (rotation), `onRestart` is told and it is read from its start.
 * Polls its stat (fs.watchFile): works for files replaced under the same name, which inotify on the
 * old file misses.
 */
export function followFile(file: string, start: { position: number; ino: number }, onLines: (lines: FileLine[]) => Promise<void> | void, onRestart: (why: 'truncated' | 'rotated') => void, interval = 200): () => void {
  let { position, ino } = start;
  let carry = Buffer.alloc(0);
  let reading = false;
  let again = false;
  let stopped = false;
  const readNew = async () => {
    if (reading) return void (again = true);
    reading = true;
    try {
      do {
        again = false;
        const stat = await fs.promises.stat(file).catch(() => undefined);
        if (!stat || stopped) return;
        if (stat.ino !== ino || stat.size < position) {
          onRestart(stat.ino !== ino ? 'rotated' : 'truncated');
          ino = stat.ino;
          position = 0;
          carry = Buffer.alloc(0);
        }
        if (stat.size > position) await readRange(stat.size);
      } while (again && !stopped);
    } finally {
      reading = false;
    }
  };
  const readRange = async (size: number) => {
    const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK).catch(() => undefined);
    if (!handle) return;
    try {
      const block = Buffer.allocUnsafe(BLOCK_BYTES);
      while (position < size && !stopped) {
        const { bytesRead } = await handle.read(block, 0, Math.min(BLOCK_BYTES, size - position), position);
        if (bytesRead === 0) break;
        const data = Buffer.concat([carry, block.subarray(0, bytesRead)]);
        const base = position - carry.length;
        position += bytesRead;
        const lines: FileLine[] = [];
        let from = 0;
        for (let index = data.indexOf(10); index >= 0; index = data.indexOf(10, from)) {
          lines.push({ text: textOf(data.subarray(from, index)), end: base + index + 1 });
          from = index + 1;
        }
        const rest = data.subarray(from);
        carry = Buffer.from(rest.length > MAX_LINE_BYTES ? rest.subarray(0, MAX_LINE_BYTES) : rest);
        // The next block is read once these are sent (backpressure: a fast-growing file does not fill the memory).
        if (lines.length > 0) await onLines(lines);
      }
    } finally {
      await handle.close();
    }
  };
  const listener = () => void readNew();
  fs.watchFile(file, { interval, persistent: false }, listener);
  void readNew(); // what was appended between the tail and the watch
  return () => {
    stopped = true;
    fs.unwatchFile(file, listener);
  };
}
