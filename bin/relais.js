#!/usr/bin/env node
// The bundled CLI (scripts/bundle-cli.mjs, part of `npm run build`) starts in about half the
// time; it is used only when it was made after the last compile of dist/cli/, so a bare `tsc`
// afterwards falls back to the compiled files rather than running stale code.
import { statSync } from 'node:fs';

const modified = (file) => statSync(new URL(file, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundled = modified('../dist/cli-bundle/main.js') >= modified('../dist/cli/main.js');
await import(bundled ? '../dist/cli-bundle/main.js' : '../dist/cli/main.js');
