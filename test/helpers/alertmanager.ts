// A real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1 with a private config and
// storage dir, no cluster listener; stop() kills it (tests register it with t.after, so it dies
// even when the test fails). Restartable on the same port to model an instance that comes back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { until } from './wait.js';

export const ALERTMANAGER = 'prometheus-alertmanager';

export interface ActiveAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export class Alertmanager {
  private proc: ChildProcess | null = null;
  private readonly dir = mkdtempSync(`${tmpdir()}/pw-am-`);
  log = '';
  port = 0;

  /** The running process's pid (for CPU accounting in the bench), or null. */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    writeFileSync(`${this.dir}/am.yml`, 'route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n');
    const proc = spawn(ALERTMANAGER, [`--config.file=${this.dir}/am.yml`, `--storage.path=${this.dir}/data`, `--web.listen-address=127.0.0.1:${this.port}`, '--cluster.listen-address='], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    let exited = false;
    proc.once('exit', () => (exited = true));
    let ready = false;
    const poll = async () => {
      try {
        ready = (await fetch(`${this.url}/-/ready`)).ok;
      } catch {
        ready = false;
      }
    };
    await until(`alertmanager on ${this.url} ready`, () => {
      if (exited) throw new Error(`alertmanager exited early:\n${this.log}`);
      void poll();
      return ready;
    }, 30_000);
    return this;
  }

  /** Kills the process and waits for it; the port is free again afterwards. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Active alerts (Alertmanager leaves resolved ones out). */
  async alerts(): Promise<ActiveAlert[]> {
    const res = await fetch(`${this.url}/api/v2/alerts`);
    if (!res.ok) throw new Error(`GET ${this.url}/api/v2/alerts: HTTP ${res.status}`);
    return (await res.json()) as ActiveAlert[];
  }
}
