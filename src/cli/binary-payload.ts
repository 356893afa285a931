/**
 * Binary payloads in the CLI (protocol §3.5): `--file <path>` sends a file's bytes as the
 * payload, `--raw` writes received bytes to stdout as they are, and otherwise bytes are shown
 * as `<N bytes sha256 0123456789abcdef…>` (never dumped on a terminal, never as a JSON array).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { Command } from 'commander';
import { isBytes } from '../library.js';
import { EXIT, fail } from './common.js';

/** How a person sees bytes: their count and the start of their SHA-256. */
export function bytesSummary(bytes: Uint8Array): string {
  return `<${bytes.length} bytes sha256 ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}…>`;
}

/** The same summary from what a history row keeps (protocol §11.1): the size and digest of all the bytes. */
export function storedBytesSummary(size: number, sha256: string): string {
  return `<${size} bytes sha256 ${sha256.slice(0, 16)}…>`;
}

/** JSON text of a value in which bytes, at any depth, read as their summary. */
export function jsonWithBytes(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    function (this: Record<string, unknown>, key, replaced: unknown) {
      // The holder's own value: a Buffer's toJSON has already run on `replaced`.
      const original = this[key];
      return isBytes(original) ? bytesSummary(original) : replaced;
    },
    indent,
  );
}

export function addFileOption(command: Command, what: string): Command {
  return command.option('--file <path>', `send the bytes of this file as ${what} (a binary message, protocol §3.5; '-' reads stdin)`);
}

export function addRawOption(command: Command): Command {
  return command.option('--raw', 'write a binary result to stdout as its bytes (default: <N bytes sha256 …>)');
}

/** The bytes of `--file` (stdin for `-`); exits 2 naming the file when it cannot be read, or when a JSON argument was given too. */
export function fileBytes(path: string, jsonGiven: boolean): Buffer {
  if (jsonGiven) fail(EXIT.USAGE, '--file sends the file as the payload: give no JSON argument with it');
  try {
    return fs.readFileSync(path === '-' ? 0 : path);
  } catch (error) {
    fail(EXIT.USAGE, `--file ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

/** Writes a final payload: bytes as they are with `--raw`, else their summary; JSON pretty-printed. */
export function writePayload(payload: unknown, raw: boolean | undefined): void {
  if (isBytes(payload)) {
    process.stdout.write(raw ? payload : `${bytesSummary(payload)}\n`);
    return;
  }
  process.stdout.write(`${jsonWithBytes(payload, 2)}\n`);
}
