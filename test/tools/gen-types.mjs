// Generates from the schemas (the source of truth): agent/policy/policy-types.ts and
// agent/daemon/config-types.ts, and agent/schema-validators.generated.ts, the first-error ajv
// validators of both schemas as standalone code (AJV_OPTIONS of the built validated-yaml.js:
// run after `npm run build`). `node test/tools/gen-types.mjs --check` exits 1 when a file is stale.
import { compileFromFile } from 'json-schema-to-typescript';
import { Ajv } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { AJV_OPTIONS } from '../../dist/agent/validated-yaml.js';

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

/** One ESM module: each schema's validator, keyed by its $id in PRECOMPILED. */
export function renderValidators(schemaPaths) {
  const ajv = new Ajv({ ...AJV_OPTIONS, allErrors: false, code: { source: true, esm: true } });
  const ids = schemaPaths.map((path) => {
    const schema = JSON.parse(readFileSync(path, 'utf8'));
    ajv.addSchema(schema);
    return schema.$id;
  });
  let code = standalone.default(ajv, Object.fromEntries(ids.map((id, i) => [`v${i}`, id])));
  // Standalone ESM still require()s ajv's runtime helpers: made imports here.
  const imports = [];
  code = code.replace(/require\("([^"]+)"\)/g, (_m, mod) => {
    const name = `runtime${imports.length}`;
    imports.push(`import ${name} from '${mod}.js';`);
    return name;
  });
  return [
    '/* eslint-disable */',
    `// Generated from ${schemaPaths.join(' and ')} by test/tools/gen-types.mjs (ajv standalone). Do not edit.`,
    '// @ts-nocheck',
    "import type { ValidateFunction } from 'ajv';",
    ...imports,
    code,
    `export const PRECOMPILED: Record<string, ValidateFunction> = { ${ids.map((id, i) => `${JSON.stringify(id)}: v${i}`).join(', ')} };`,
    '',
  ].join('\n');
}

const check = process.argv.includes('--check');
let stale = 0;
const outputs = [...targets.map(([schema, out]) => [() => render(schema), out]), [async () => renderValidators(targets.map(([schema]) => schema)), 'agent/schema-validators.generated.ts']];
for (const [make, out] of outputs) {
  const text = await make();
  if (check) {
    let current = '';
    try { current = readFileSync(out, 'utf8'); } catch { /* missing counts as stale */ }
    if (current !== text) { console.error(`${out} is stale: run npm run build && npm run gen:types`); stale++; }
  } else {
    writeFileSync(out, text);
  }
}
process.exit(stale ? 1 : 0);
