/** How a command ends: its exit code and, on failure, one line on stderr. Loaded by every command, so it loads nothing. */

/** Exit codes of `relais call` (and the others where they apply). */
/** Exit codes: NOT_CONFIRMED, an action was sent but its effect was not seen (a kill the handler did not confirm). */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NO_HANDLER: 3, NOT_CONFIRMED: 4, TIMEOUT: 124, INTERRUPTED: 130 } as const;

export function fail(code: number, message: string): never {
  process.stderr.write(`relais: ${message}\n`);
  process.exit(code);
}

/**
 * Resolves once what was written to stdout has left the process. What a pipe does not take at
 * once is queued, and `process.exit()` drops the queue: `relais history | wc -c` got the first
 * 360 KB of 2 MB. A reader that went away (`| head`) ends the wait as well.
 */
export function stdoutWritten(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/** Exits with `code` once stdout is written (stdoutWritten): for the commands that print results. */
export async function exitWhenWritten(code: number): Promise<never> {
  await stdoutWritten();
  process.exit(code);
}
