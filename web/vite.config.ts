/**
 * The page's build (issue 9): vite bundles web/ into dist/web/, which `relais start` serves.
 * No plugin: preact's JSX comes from web/tsconfig.json (`jsxImportSource`), which esbuild reads.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webRoot = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: webRoot,
  // Relative URLs: the page works wherever the server mounts it.
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
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
