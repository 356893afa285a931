/** The corpus of xPL messages written down from the specification (test/fixtures/xpl/*.txt), one message per file as on the wire. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/xpl');

export function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, name));
}

export function fixtureNames(): string[] {
  return fs.readdirSync(FIXTURES).filter((name) => name.endsWith('.txt'));
}
