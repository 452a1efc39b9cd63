// Test environment checks: root + tools, or a printed skip (never a silent pass); under CI=true
// missing prerequisites are failures.
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns true when the test may go on; otherwise skips it with a reason (or throws under CI). */
export function needsRootAnd(t: TestContext, ...commands: string[]): boolean {
  return needs(t, [...(process.getuid?.() === 0 ? [] : ['root']), ...commands.filter((c) => !hasCommand(c))]);
}

/** The same for tests that need the tools but not root. */
export function needsTools(t: TestContext, ...commands: string[]): boolean {
  return needs(t, commands.filter((c) => !hasCommand(c)));
}

function needs(t: TestContext, missing: string[]): boolean {
  if (!missing.length) return true;
  const reason = `needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true requires this test to run`);
  console.log(`# skipped: ${reason}`);
  t.skip(reason);
  return false;
}
