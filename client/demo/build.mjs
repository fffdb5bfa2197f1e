// Builds the demo page into client/dist/demo (served by the service's DemoModule at `/`):
// app.js (the page and the client library, one ES module), app.css, index.html.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath, URL } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const out = here('../dist/demo/');

await mkdir(out, { recursive: true });
await build({
  entryPoints: [
    { in: here('main.ts'), out: 'app' },
    { in: here('styles.css'), out: 'app' },
  ],
  outdir: out,
  tsconfig: here('tsconfig.json'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
});
await copyFile(here('index.html'), `${out}index.html`);
