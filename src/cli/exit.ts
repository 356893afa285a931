/** How a command ends: its exit code and, on failure, one line on stderr. Loaded by every command, so it loads nothing. */

/** Exit codes of `relais call` (and the others where they apply). */
/** Exit codes: NOT_CONFIRMED, an action was sent but its effect was not seen (a kill the handler did not confirm). */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NO_HANDLER: 3, NOT_CONFIRMED: 4, TIMEOUT: 124, INTERRUPTED: 130 } as const;

export function fail(code: number, message: string): never {
  process.stderr.write(`relais: ${message}\n`);
  process.exit(code);
}
