/**
 * src/cli is the command line and nothing else depends on it: the library, the broker, the
 * router (its worker thread too), the agent, the bridges and the web server are used without it,
 * so what they share with the CLI (log lines: src/logging) lives outside it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { moduleSpecifiers } from '../testkit/module-imports.js';

const src = fileURLToPath(new URL('../../src/', import.meta.url));
const cli = path.join(src, 'cli');

describe('cli boundary', () => {
  it('cli boundary - no module of src/ outside src/cli imports one of src/cli', () => {
    const outside = (fs.readdirSync(src, { recursive: true }) as string[]).filter((name) => name.endsWith('.ts') && !path.join(src, name).startsWith(`${cli}${path.sep}`));
    assert.ok(outside.length > 50, `read ${outside.length} files`);
    const problems: string[] = [];
    for (const name of outside) {
      const file = path.join(src, name);
      for (const { specifier, line } of moduleSpecifiers(file)) {
        if (!specifier.startsWith('.')) continue;
        const target = path.resolve(path.dirname(file), specifier);
        if (target.startsWith(`${cli}${path.sep}`)) problems.push(`src/${name}:${line} imports '${specifier}' from src/cli`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
