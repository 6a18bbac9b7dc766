// Writes generated/NAME.ts for each deploy/grafana/dashboards/NAME.json:
//   const dashboard = <the JSON text, verbatim> satisfies CheckedDashboard;
// so that tsc checks the dashboard as a fresh object literal (literal types kept, excess
// properties reported) instead of a JSON module, whose strings are widened to `string`.
// The JSON starts on line 1, so tsc's line numbers are the JSON file's.
// Usage: node generate.mjs [PROJECT_SOURCE_DIR]   (default: ../../.. from this folder)
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(process.argv[2] ?? join(here, '..', '..', '..'));
const dashboards = join(source, 'deploy', 'grafana', 'dashboards');
const out = join(here, 'generated');

const names = readdirSync(dashboards).filter((f) => f.endsWith('.json')).sort();
if (names.length === 0) {
  console.error(`generate.mjs: no dashboards in ${dashboards}`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
for (const name of names) {
  const path = join(dashboards, name);
  const text = readFileSync(path, 'utf8');
  try {
    JSON.parse(text);
  } catch (e) {
    console.error(`${path}: not JSON: ${e.message}`);
    process.exit(1);
  }
  if (!text.startsWith('{')) {
    console.error(`${path}: must start with "{" (no BOM or blank line)`);
    process.exit(1);
  }
  const ts =
    `import type { CheckedDashboard } from '../schema'; const dashboard = ${text.trimEnd()} ` +
    `satisfies CheckedDashboard;\nexport default dashboard;\n// generated from ${path} by generate.mjs\n`;
  writeFileSync(join(out, name.replace(/\.json$/, '.ts')), ts);
}
console.log(`generate.mjs: ${names.length} dashboards -> ${out}`);
