// Reads a YAML file, validates it against a JSON schema, and reports every problem as
// "file:line:col: path: what is wrong". Shared by the policy and the agent config.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, isMap, isScalar, type Document, type Node } from 'yaml';
import { InputError } from './errors.js';
import { redact } from './alerts/sinks/redact.js'; // a URL that fails a pattern may hold a token

export type DocPath = (string | number)[];

export interface Located {
  file: string;
  doc: Document;
  lines: LineCounter;
}

const ajv = new Ajv({ allErrors: true, strict: true, verbose: true, discriminator: true });
const validators = new Map<object, ValidateFunction>();

function validatorFor(schema: object): ValidateFunction {
  let v = validators.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    validators.set(schema, v);
  }
  return v;
}

/** "rules[1].port" for ["rules", 1, "port"]. */
export function formatPath(path: DocPath): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? (i ? `.${p}` : p) : `[${JSON.stringify(p)}]`))
    .join('');
}

/** file:line:col of the node at path (or of its key), falling back to the nearest ancestor that exists. */
export function locate(src: Located, path: DocPath, atKey = false): string {
  let offset = 0;
  for (let n = path.length; n >= 0; n--) {
    const here = path.slice(0, n);
    if (atKey && n === path.length && n > 0) {
      const parent = src.doc.getIn(here.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(here[n - 1]));
        const keyRange = (pair?.key as Node | undefined)?.range;
        if (keyRange) {
          offset = keyRange[0];
          break;
        }
      }
    }
    const node = (n === 0 ? src.doc.contents : src.doc.getIn(here, true)) as Node | null | undefined;
    if (node?.range) {
      offset = node.range[0];
      break;
    }
  }
  const { line, col } = src.lines.linePos(offset);
  return `${src.file}:${line}:${col}`;
}

/** One readable line per ajv error; keeps the most specific errors for each place. */
export function describeSchemaErrors(errors: ErrorObject[]): { path: DocPath; message: string; atKey: boolean }[] {
  const toPath = (p: string): DocPath =>
    p === '' ? [] : p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s));
  const specific = errors.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if');
  const byPlace = new Map<string, ErrorObject[]>();
  for (const e of specific) {
    const list = byPlace.get(e.instancePath) ?? [];
    list.push(e);
    byPlace.set(e.instancePath, list);
  }
  const out: { path: DocPath; message: string; atKey: boolean }[] = [];
  for (const [place, list] of byPlace) {
    // A deeper error explains an anyOf better than "must be array" at its parent.
    const deeper = [...byPlace.keys()].some((k) => k.startsWith(place + '/'));
    const nonType = list.filter((e) => e.keyword !== 'type');
    if (deeper && nonType.length === 0) continue;
    const chosen = nonType.length ? nonType : list;
    const types = chosen.filter((e) => e.keyword === 'type').map((e) => String(e.params.type));
    if (types.length) out.push({ path: toPath(place), message: `must be ${orList(types)}`, atKey: false });
    for (const e of chosen.filter((x) => x.keyword !== 'type')) {
      const path = toPath(place);
      switch (e.keyword) {
        case 'required':
          out.push({ path, message: `missing required property "${e.params.missingProperty}"`, atKey: false });
          break;
        case 'additionalProperties':
          out.push({ path: [...path, e.params.additionalProperty], message: `unknown property "${e.params.additionalProperty}"`, atKey: true });
          break;
        case 'propertyNames':
          out.push({ path: [...path, e.params.propertyName], message: `invalid name "${e.params.propertyName}"`, atKey: true });
          break;
        case 'enum':
          out.push({ path, message: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`, atKey: false });
          break;
        case 'const':
          out.push({ path, message: `must be ${JSON.stringify(e.params.allowedValue)}`, atKey: false });
          break;
        case 'maximum':
          out.push({ path, message: `must be ≤ ${e.params.limit}`, atKey: false });
          break;
        case 'minimum':
          out.push({ path, message: `must be ≥ ${e.params.limit}`, atKey: false });
          break;
        case 'minItems':
          out.push({ path, message: `must have at least ${e.params.limit} item(s)`, atKey: false });
          break;
        case 'minLength':
          out.push({ path, message: 'must not be empty', atKey: false });
          break;
        case 'pattern': {
          const desc = (e.parentSchema as { description?: string } | undefined)?.description;
          out.push({ path, message: `${redact(JSON.stringify(e.data))} is not valid${desc ? `: ${desc}` : ` (must match ${e.params.pattern})`}`, atKey: false });
          break;
        }
        default:
          out.push({ path, message: e.message ?? e.keyword, atKey: false });
      }
    }
  }
  return out;
}

function orList(items: string[]): string {
  const u = [...new Set(items)];
  return u.length <= 1 ? (u[0] ?? '') : `${u.slice(0, -1).join(', ')} or ${u.at(-1)}`;
}

/** Parses and validates; throws InputError listing every problem with its place. */
export function readValidatedYaml<T>(file: string, schema: object, text?: string): { value: T; src: Located } {
  let source: string;
  try {
    source = text ?? readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError([`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const src: Located = { file, doc, lines };
  if (doc.errors.length) {
    throw new InputError(
      doc.errors.map((e) => {
        const { line, col } = lines.linePos(e.pos[0]);
        return `${file}:${line}:${col}: ${e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
    );
  }
  if (doc.contents === null) throw new InputError([`${file}:1:1: the file is empty`]);
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const validate = validatorFor(schema);
  if (!validate(value)) {
    throw new InputError(
      describeSchemaErrors(validate.errors ?? []).map((p) => `${locate(src, p.path, p.atKey)}: ${p.path.length ? formatPath(p.path) + ': ' : ''}${p.message}`),
    );
  }
  return { value: value as T, src };
}
