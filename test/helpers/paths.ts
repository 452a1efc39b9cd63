// Paths from compiled tests (dist/test/...) back to the source tree.
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = `${ROOT}dist/agent/cli.js`;
export const HELPERS = `${ROOT}dist/test/helpers/`;
export const FIXTURES = `${ROOT}test/fixtures/`;
