/**
 * src/protocol is the one home of the wire and runs wherever a client runs: Node, the page, a
 * user's browser app (docs/protocol.md; STYLE.md "the protocol is pure and apart from I/O").
 * Two checks keep it so: its modules import only each other and runtime-agnostic packages, and
 * they compile against a browser's globals alone (web/tsconfig.json: DOM, no Node types), so
 * that neither a `node:` module nor Node's `Buffer` or `process` can slip in.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { moduleSpecifiers } from '../testkit/module-imports.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const protocolDir = path.join(repo, 'src', 'protocol');

/** Packages a protocol module may import: each checked to run in a browser as in Node. */
const RUNTIME_AGNOSTIC_PACKAGES = new Set(['zod']);

const protocolFiles = fs
  .readdirSync(protocolDir)
  .filter((name) => name.endsWith('.ts'))
  .sort();

/** Why `specifier`, imported by a file of src/protocol, breaks the boundary; undefined when it does not. */
function importProblem(specifier: string): string | undefined {
  if (specifier.startsWith('.')) {
    const target = path.resolve(protocolDir, specifier);
    return path.dirname(target) === protocolDir ? undefined : 'reaches outside src/protocol';
  }
  if (specifier.startsWith('node:')) return 'is a Node module';
  const packageName = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
  return RUNTIME_AGNOSTIC_PACKAGES.has(packageName) ? undefined : 'is not a package known to run in a browser (RUNTIME_AGNOSTIC_PACKAGES)';
}

describe('protocol boundary', () => {
  it('protocol boundary - src/protocol imports nothing from the rest of src/ and no Node module', () => {
    const problems: string[] = [];
    for (const name of protocolFiles) {
      for (const { specifier, line } of moduleSpecifiers(path.join(protocolDir, name))) {
        const problem = importProblem(specifier);
        if (problem) problems.push(`src/protocol/${name}:${line} imports '${specifier}', which ${problem}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it("protocol boundary - src/protocol compiles with a browser's globals alone (no Buffer, no process)", () => {
    const webConfig = ts.readConfigFile(path.join(repo, 'web', 'tsconfig.json'), ts.sys.readFile);
    assert.equal(webConfig.error, undefined);
    const { options } = ts.parseJsonConfigFileContent(webConfig.config, ts.sys, path.join(repo, 'web'));
    const roots = protocolFiles.map((name) => path.join(protocolDir, name));
    const program = ts.createProgram(roots, { ...options, types: [], noEmit: true });
    const problems = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
      const where = diagnostic.file ? `${path.relative(repo, diagnostic.file.fileName)}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}` : '(config)';
      return `${where}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ')}`;
    });
    assert.deepEqual(problems, []);
  });

});
