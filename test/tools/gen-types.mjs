// Generates agent/policy/policy-types.ts from rules/policy.schema.json (the schema is the source of truth).
// `node test/tools/gen-types.mjs --check` exits 1 when the committed file is stale.
import { compileFromFile } from 'json-schema-to-typescript';
import { readFileSync, writeFileSync } from 'node:fs';

const targets = [
  ['rules/policy.schema.json', 'agent/policy/policy-types.ts'],
  ['rules/config.schema.json', 'agent/daemon/config-types.ts'],
];

export async function render(schemaPath) {
  return compileFromFile(schemaPath, {
    bannerComment: '// Generated from ' + schemaPath + ' by test/tools/gen-types.mjs. Do not edit.',
    additionalProperties: false,
    style: { singleQuote: true },
    format: false,
  });
}

const check = process.argv.includes('--check');
let stale = 0;
for (const [schema, out] of targets) {
  const text = await render(schema);
  if (check) {
    let current = '';
    try { current = readFileSync(out, 'utf8'); } catch { /* missing counts as stale */ }
    if (current !== text) { console.error(`${out} is stale: run npm run gen:types`); stale++; }
  } else {
    writeFileSync(out, text);
  }
}
process.exit(stale ? 1 : 0);
