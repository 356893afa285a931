/**
 * The page's build (docs/web.md): vite bundles web/ into dist/page/, which `relais start` serves
 * (apart from dist/web/, where tsc puts the web server's own modules: nothing else is served).
 * No plugin: preact's JSX comes from web/tsconfig.json (`jsxImportSource`), which esbuild reads.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webRoot = fileURLToPath(new URL('.', import.meta.url));
const outDir = fileURLToPath(new URL('../dist/page', import.meta.url));

export default defineConfig({
  root: webRoot,
  // Relative URLs: the page works wherever the server mounts it.
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir,
    emptyOutDir: true,
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
