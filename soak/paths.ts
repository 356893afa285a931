/** Where the soak finds the CLI and its actor programs. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SOAK_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(SOAK_DIR, '..');
/** The real `relais` binary (it runs dist/: `npm run soak` builds it first). */
export const RELAIS_BIN = path.join(REPO_ROOT, 'bin/relais.js');

/** The environment variable that carries an actor's settings: its token is a secret, and a command line is not (ps shows it). */
export const ACTOR_SETTINGS_VARIABLE = 'SOAK_ACTOR_SETTINGS';

/** How to run actor `name` (soak/actors/<name>.ts) with `settings`. */
export function actorCommand(name: string, settings: object): { args: string[]; env: NodeJS.ProcessEnv } {
  return { args: ['--import', 'tsx', path.join(SOAK_DIR, 'actors', `${name}.ts`)], env: { ...process.env, [ACTOR_SETTINGS_VARIABLE]: JSON.stringify(settings) } };
}
