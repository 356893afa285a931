/**
 * The page's build (issue 9): vite bundles web/ into dist/web/, which `relais start` serves.
 * No plugin: preact's JSX comes from web/tsconfig.json (`jsxImportSource`), which esbuild reads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const webRoot = fileURLToPath(new URL('.', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/web', import.meta.url));

/**
 * dist/web/ also holds the web server's own modules (tsc compiles src/web/ there), so vite must
 * not empty it: only the page's previous files go, so old hashed bundles do not pile up.
 */
function removeOldPage(): Plugin {
  return {
    name: 'relais-remove-old-page',
    apply: 'build',
    buildStart() {
      fs.rmSync(path.join(outDir, 'assets'), { recursive: true, force: true });
      fs.rmSync(path.join(outDir, 'index.html'), { force: true });
    },
  };
}

export default defineConfig({
  root: webRoot,
  // Relative URLs: the page works wherever the server mounts it.
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  plugins: [removeOldPage()],
  build: {
    outDir,
    emptyOutDir: false,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      // zod's sources carry /* @__PURE__ */ comments placed where rollup cannot use them: noise.
      onwarn(warning, warn) {
        if (warning.code !== 'INVALID_ANNOTATION') warn(warning);
      },
    },
  },
});
