/**
 * Bundles the compiled CLI (dist/cli, after `tsc -p tsconfig.build.json`) into dist/cli-bundle/
 * for start-up time: `relais pub` and `relais call` must start in ≤150 ms (bench/RESULTS.md).
 * Unbundled, Node 20 resolves, reads and compiles some 300 files for them (zod alone is 95
 * modules, MQTT.js a tree of CommonJS files), and has no compile cache to skip that
 * (module.enableCompileCache() came in Node 22.1): one file per command plus shared chunks
 * costs about half the CPU.
 *
 * Only the client commands are bundled, with the packages they need (MQTT.js, zod, pino,
 * cli-progress); they run no broker, router or web server. The other commands (start, router,
 * init, serve, agent…) load from dist/cli/ exactly as compiled: the bundle imports them as they
 * are, so code that finds files next to itself (the router's worker thread, the web page) runs
 * where it was built, and each process holds one copy of every module. bin/relais.js uses the
 * bundle only when it is newer than dist/cli/main.js: a bare `tsc` afterwards makes it stale,
 * and the CLI then runs from dist/cli/ (slower, never out of date).
 *
 *   node scripts/bundle-cli.mjs      # part of `npm run build`
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist/cli-bundle');

/** The command modules (dist/cli/<name>.js) bundled; any other one stays a plain import of dist/cli/. */
const BUNDLED_COMMANDS = new Set(['context', 'pub', 'sub', 'call', 'history', 'stats', 'kill', 'clients', 'sites', 'events', 'logs', 'contracts', 'exec', 'transfer', 'kv']);

/** Packages bundled with the client commands; every other dependency is imported from node_modules. */
const BUNDLED_PACKAGES = new Set(['mqtt', 'zod', 'pino', 'cli-progress']);

const packageJson = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
// commander too: the bundle's main hands a Command to the unbundled commands' code and back.
const external = Object.keys(packageJson.dependencies).filter((name) => !BUNDLED_PACKAGES.has(name));

/** Keeps `import('./start.js')` in commands.js an import of dist/cli/start.js, unbundled. */
const unbundledCommands = {
  name: 'unbundled-commands',
  setup(build) {
    build.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (args) => {
      if (args.kind !== 'dynamic-import' || path.basename(args.importer) !== 'commands.js') return undefined;
      const name = path.basename(args.path, '.js');
      return BUNDLED_COMMANDS.has(name) ? undefined : { path: `../cli/${name}.js`, external: true };
    });
  },
};

// Built aside, then swapped in: a `relais` starting meanwhile finds the old bundle or none
// (bin/relais.js then runs dist/cli/), never half of one.
const building = `${outdir}.${process.pid}`;
const result = await build({
  entryPoints: [path.join(root, 'dist/cli/main.js')],
  outdir: building,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: external.flatMap((name) => [name, `${name}/*`]),
  plugins: [unbundledCommands],
  // Bundled CommonJS (MQTT.js, pino) calls require(); an ES module has none of its own.
  banner: { js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);" },
  // Whitespace only: names stay, so stack traces and error classes read as in the source.
  minifyWhitespace: true,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
}).catch((error) => {
  fs.rmSync(building, { recursive: true, force: true });
  throw error;
});
fs.rmSync(outdir, { recursive: true, force: true });
fs.renameSync(building, outdir);
const bytes = Object.values(result.metafile.outputs).reduce((total, output) => total + output.bytes, 0);
process.stdout.write(`bundled the client commands into ${path.relative(root, outdir)}/ (${Object.keys(result.metafile.outputs).length} files, ${(bytes / 1e6).toFixed(1)} MB)\n`);
