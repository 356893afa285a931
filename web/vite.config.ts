/**
 * The page's build (docs/web.md): vite bundles web/ into dist/page/, which `relais start` serves
 * (apart from dist/web/, where tsc puts the web server's own modules: nothing else is served).
 * No plugin: preact's JSX comes from web/tsconfig.json (`jsxImportSource`), which esbuild reads.
 * The page is a client of the bus through `relais/browser`, the library's browser entry, taken
 * from the sources (as web/tsconfig.json's `paths` does for the types).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webRoot = fileURLToPath(new URL('.', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/page', import.meta.url));
const browserEntry = fileURLToPath(new URL('../src/browser.ts', import.meta.url));

export default defineConfig({
  root: webRoot,
  // Relative URLs: the page works wherever the server mounts it.
  base: './',
  logLevel: 'warn',
  resolve: { alias: { 'relais/browser': browserEntry } },
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      // zod's sources carry /* @__PURE__ */ comments placed where rollup cannot use them: noise.
      onwarn(warning, warn) {
        if (warning.code !== 'INVALID_ANNOTATION') warn(warning);
      },
    },
  },
});
