/**
 * Named contexts (as `nats context`): a broker and the credentials to reach it, saved once and
 * used by every connecting command (`--context <name>`, RELAIS_CONTEXT, or the selected one).
 * One file, `contexts.json`, in the user's config directory ($XDG_CONFIG_HOME/relais, else
 * ~/.config/relais), written 0600 in a 0700 directory. It holds paths only: the CA, the
 * certificate and key, and the file of a token, never a token itself (docs/security.md "CLI
 * credentials").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What a context records: the connection options of every command, as absolute paths. */
export interface Context {
  broker: string;
  id?: string;
  ca?: string;
  cert?: string;
  key?: string;
  tokenFile?: string;
  description?: string;
}

export interface ContextFile {
  version: 1;
  /** The context used when a command names none (`relais context select`). */
  selected?: string;
  contexts: Record<string, Context>;
}

/** The fields a context may hold, in the order `show` prints them. */
export const CONTEXT_FIELDS = ['broker', 'id', 'ca', 'cert', 'key', 'tokenFile', 'description'] as const;

export class ContextError extends Error {}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkContextName(name: string): void {
  if (!NAME.test(name)) throw new ContextError(`a context name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(name)}`);
}

/** The directory of the user's relais settings: $XDG_CONFIG_HOME/relais, else ~/.config/relais. */
export function configDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'relais');
}

export function contextsFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(configDirectory(env), 'contexts.json');
}

/** The saved contexts; none when the file does not exist. A file that is not one of ours is an error naming it. */
export function readContexts(file = contextsFile()): ContextFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, contexts: {} };
    throw new ContextError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ContextError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = value as Partial<ContextFile> | null;
  if (typeof parsed !== 'object' || parsed === null || parsed.version !== 1 || typeof parsed.contexts !== 'object' || parsed.contexts === null) {
    throw new ContextError(`${file} is not a relais contexts file (version 1 with "contexts")`);
  }
  for (const [name, context] of Object.entries(parsed.contexts)) {
    if (typeof context !== 'object' || context === null || typeof context.broker !== 'string') throw new ContextError(`${file}: context ${name} has no broker`);
    for (const field of CONTEXT_FIELDS) {
      if (context[field] !== undefined && typeof context[field] !== 'string') throw new ContextError(`${file}: context ${name}: ${field} must be a string`);
    }
  }
  return { version: 1, contexts: parsed.contexts, ...(typeof parsed.selected === 'string' && { selected: parsed.selected }) };
}

/**
 * Writes the contexts: to a new 0600 file renamed over the old one, so that a reader never sees
 * half a file and the mode is 0600 even if the old file was made wider.
 */
export function writeContexts(contexts: ContextFile, file = contextsFile()): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temporary, `${JSON.stringify(contexts, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw new ContextError(`cannot write ${file}: ${(error as Error).message}`);
  }
}

/**
 * The context a command uses: the one named (--context, RELAIS_CONTEXT), else the selected one,
 * else none. A named context that does not exist is an error; so is a selected one removed by
 * hand from the file.
 */
export function resolveContext(named: string | undefined, file = contextsFile()): { name: string; context: Context } | undefined {
  const saved = readContexts(file);
  const name = named ?? saved.selected;
  if (name === undefined) return undefined;
  const context = saved.contexts[name];
  if (context === undefined) {
    const known = Object.keys(saved.contexts);
    const choices = known.length > 0 ? `saved: ${known.join(', ')}` : 'none is saved: relais context add <name> --broker <url> …';
    throw new ContextError(named !== undefined ? `no context named ${name} (${choices})` : `the selected context ${name} is not in ${file} (${choices}; relais context select <name>)`);
  }
  return { name, context };
}
