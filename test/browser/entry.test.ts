/**
 * `relais/browser` (src/browser.ts) holds no Node module: bundled for the browser by esbuild
 * (which fails on a Node built-in), and none of its sources names a Node global outside a
 * feature test (`globalThis.process?.…`), which a bundle would keep and a page would throw on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { build } from 'esbuild';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const NODE_GLOBALS = new Set(['process', 'Buffer', 'require', '__dirname', '__filename', 'setImmediate', 'global']);

/** Where `file` uses a Node global as a value: not a type, not a property name. */
function nodeGlobalsIn(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isTypeNode(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node) || ts.isImportDeclaration(node)) return;
    if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      const parent = node.parent;
      const isName = (ts.isPropertyAccessExpression(parent) && parent.name === node) || (ts.isPropertyAssignment(parent) && parent.name === node) || ts.isPropertySignature(parent) || ts.isMethodDeclaration(parent);
      if (!isName) found.push(`${path.relative(ROOT, file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1} ${node.text}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('relais/browser', () => {
  it('browser entry - bundles for the browser with no Node module, and names no Node global', async () => {
    const result = await build({ entryPoints: [path.join(ROOT, 'src/browser.ts')], absWorkingDir: ROOT, bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' });
    const ours = Object.keys(result.metafile.inputs).filter((input) => input.startsWith('src/'));
    assert.ok(ours.includes('src/client/requesting/requester.ts') && ours.includes('src/client/requesting/event-feed.ts'), 'the client\'s own request and event-feed code is in it');
    for (const nodeOnly of ['src/client/node-runtime.ts', 'src/client/connection/signing.ts', 'src/client/serving/log-service.ts', 'src/security/ed25519.ts']) assert.ok(!ours.includes(nodeOnly), `${nodeOnly} is not in it`);
    assert.deepEqual(ours.flatMap((input) => nodeGlobalsIn(path.join(ROOT, input))), []);
  });

  it('browser entry - minified, as a page is, errors keep their names, on the wire too', async () => {
    // The error modules alone: MQTT.js's browser build needs a browser to load.
    const result = await build({
      stdin: { contents: "export * from './src/protocol/errors.ts'; export { ContractError } from './src/client/serving/contracts.ts'; export { UnknownClientError } from './src/protocol/registry.ts';", resolveDir: ROOT, loader: 'ts' },
      bundle: true, platform: 'browser', format: 'esm', write: false, minify: true, logLevel: 'silent',
    });
    const bundle = await import(`data:text/javascript;base64,${Buffer.from(result.outputFiles[0]!.text).toString('base64')}`);
    for (const name of ['TimeoutError', 'CancelledError', 'ContractError']) assert.equal(new bundle[name]('x').name, name);
    assert.equal(new bundle.UnknownClientError('x').name, 'UnknownClientError');
    assert.equal(new bundle.RelaisError('CODE', 'x').name, 'RelaisError');
    assert.equal(bundle.toWire(new bundle.CancelledError('stopped')).error.name, 'CancelledError');
  });
});
