// Waiting in tests without fixed sleeps: poll a condition until it holds or a deadline passes.

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn every 100 ms until it returns something truthy; fails naming what it waited for.
 *  The default deadline is generous (a daemon can take over 15 s to start on a loaded host): it
 *  only bounds a failing wait, a passing one returns as soon as the condition holds. */
export async function until<T>(what: string, fn: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
