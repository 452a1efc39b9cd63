// The real firewall managers inside a lab namespace: dockerd (Debian's docker.io 20.10) and
// firewalld 1.3 on a private system D-Bus. Each runs in the lab's server network namespace and in
// a private mount namespace (unshare -m) whose /run, /etc/docker or /etc/firewalld and /var/log
// are bind mounts of a temp dir: nothing they write reaches the host's files, network or firewall.
// stop() ends exactly the processes started here (by pid) and removes the temp dir and the cgroups
// dockerd made (under a parent named for this run).
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName } from './lab.js';
import { sleep } from './wait.js';

/** Binds each SRC over DST (pairs up to "--"), then runs the rest: no string is ever interpolated into the script. */
const BIND_THEN_EXEC = 'set -e; while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@"';

export interface Manager {
  /** The temp dir holding its state, sockets and log. */
  dir: string;
  /** Environment for its client (docker / firewall-cmd). */
  env: NodeJS.ProcessEnv;
  log(): string;
  stop(): Promise<void>;
}

/** Daemons started here and not yet stopped: killed (by pid) if the test process exits without stop(). */
const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

function startInPrivateMounts(ns: string, binds: [string, string][], cmd: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  const args = [`--net=/run/netns/${ns}`, '--', 'unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', BIND_THEN_EXEC, 'sh', ...binds.flat(), '--', ...cmd];
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn('nsenter', args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
    running.add(child);
    child.once('exit', () => running.delete(child));
    return child;
  } finally {
    closeSync(fd);
  }
}

/** Runs a client command with the manager's environment; rejects with its stderr. */
export function client(m: Manager, cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...m.env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

async function untilReady(what: string, ok: () => Promise<boolean>, log: () => string, ms: number, exited: () => string | null): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await ok()) return;
    const gone = exited();
    if (gone !== null) throw new Error(`${what} exited (${gone}) before it was ready: ${lastLines(log())}`);
    if (Date.now() > end) throw new Error(`${what} not ready after ${ms / 1000} s: ${lastLines(log())}`);
    await sleep(200);
  }
}

const lastLines = (s: string) => s.trim().split('\n').slice(-4).join(' | ');

function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    c.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Pids whose command line mentions `dir` (the shims and containers' helpers dockerd left): ours alone, as the dir is ours. */
function pidsMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

function cgroupPids(parent: string): number[] {
  const out: number[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    try {
      out.push(...readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
    } catch {
      /* not a cgroup dir */
    }
  };
  for (const ctl of readdirSync('/sys/fs/cgroup')) walk(join('/sys/fs/cgroup', ctl, parent));
  return out;
}

function removeCgroups(parent: string): void {
  const rm = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rm(join(d, e.name));
    try {
      rmdirSync(d);
    } catch {
      /* busy or not ours to remove */
    }
  };
  for (const ctl of readdirSync('/sys/fs/cgroup')) rm(join('/sys/fs/cgroup', ctl, parent));
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export interface DockerOptions {
  userlandProxy: boolean;
  /** --ipv6 with fd00:d0c::/64 for the default bridge, and ip6tables rules (experimental in 20.10). */
  ipv6: boolean;
}

export const DOCKER_V6_SUBNET = 'fd00:d0c::/64';

/** dockerd in the namespace `ns`; resolves once its API answers. */
export async function startDockerd(ns: string, o: DockerOptions): Promise<Manager> {
  const dir = mkdtempSync(`${tmpdir()}/pw-dockerd-`);
  const cgroupParent = uniqueName('docker');
  for (const d of ['etc', 'run', 'data', 'exec']) mkdirSync(join(dir, d));
  const logFile = join(dir, 'dockerd.log');
  const sock = join(dir, 'docker.sock');
  const args = [
    'dockerd', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'), '-H', `unix://${sock}`,
    '--iptables=true', `--userland-proxy=${o.userlandProxy}`, '--storage-driver=vfs', `--cgroup-parent=/${cgroupParent}`,
    ...(o.ipv6 ? ['--ipv6', '--fixed-cidr-v6', DOCKER_V6_SUBNET, '--experimental', '--ip6tables'] : []),
  ];
  const child = startInPrivateMounts(ns, [[join(dir, 'etc'), '/etc/docker'], [join(dir, 'run'), '/run']], args, {}, logFile);
  const m: Manager = {
    dir,
    env: { DOCKER_HOST: `unix://${sock}` },
    log: () => readFileSync(logFile, 'utf8'),
    stop: async () => {
      try {
        const ids = (await client(m, 'docker', ['ps', '-aq'], 20_000).catch(() => '')).split('\n').filter(Boolean);
        if (ids.length) await client(m, 'docker', ['rm', '-f', ...ids], 30_000).catch(() => '');
      } finally {
        child.kill('SIGTERM');
        if (!(await waitExit(child, 15_000))) child.kill('SIGKILL');
        await waitExit(child, 5000);
        killPids([...cgroupPids(cgroupParent), ...pidsMentioning(dir)]);
        await sleep(300);
        removeCgroups(cgroupParent);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await untilReady('dockerd', () => client(m, 'docker', ['version', '--format', '{{.Server.Version}}'], 5000).then(() => true, () => false), m.log, 60_000, () => (child.exitCode ?? child.signalCode)?.toString() ?? null);
  } catch (err) {
    await m.stop();
    throw err;
  }
  return m;
}

/** Imports a one-binary image ("pwbusybox:1") from this machine's static busybox: no registry. */
export async function importBusybox(m: Manager): Promise<string> {
  const root = join(m.dir, 'image');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'httpd', 'nc', 'sleep']) symlinkSync('busybox', join(root, 'bin', applet));
  const tar = join(m.dir, 'image.tar');
  execFileSync('tar', ['-C', root, '-cf', tar, '.']);
  await client(m, 'docker', ['import', tar, 'pwbusybox:1']);
  return 'pwbusybox:1';
}

/** firewalld (nftables backend) in `ns`, on a private system bus; resolves once `firewall-cmd --state` says running. */
export async function startFirewalld(ns: string): Promise<Manager> {
  const dir = mkdtempSync(`${tmpdir()}/pw-firewalld-`);
  for (const d of ['etc', 'run', 'log']) mkdirSync(join(dir, d));
  copyFileSync('/etc/firewalld/firewalld.conf', join(dir, 'etc', 'firewalld.conf'));
  const busSock = join(dir, 'bus');
  // Anyone on this private bus may own and call anything: it only carries this test's calls.
  writeFileSync(join(dir, 'bus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${busSock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
`);
  const logFile = join(dir, 'firewalld.log');
  const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${busSock}` };
  const bus = spawn('dbus-daemon', ['--config-file', join(dir, 'bus.conf'), '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const children: ChildProcess[] = [bus];
  running.add(bus);
  bus.once('exit', () => running.delete(bus));
  const m: Manager = {
    dir,
    env,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    stop: async () => {
      for (const c of children.reverse()) {
        c.kill('SIGTERM');
        if (!(await waitExit(c, 10_000))) c.kill('SIGKILL');
        await waitExit(c, 5000);
      }
      killPids(pidsMentioning(dir));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      bus.stdout!.once('data', () => resolve());
      bus.once('exit', (code) => reject(new Error(`dbus-daemon exited (${code})`)));
    });
    const fw = startInPrivateMounts(ns, [[join(dir, 'etc'), '/etc/firewalld'], [join(dir, 'run'), '/run'], [join(dir, 'log'), '/var/log']], ['firewalld', '--nofork', '--nopid'], env, logFile);
    children.push(fw);
    await untilReady('firewalld', () => client(m, 'firewall-cmd', ['--state'], 5000).then((s) => s.trim() === 'running', () => false), m.log, 60_000, () => (fw.exitCode ?? fw.signalCode)?.toString() ?? null);
  } catch (err) {
    await m.stop();
    throw err;
  }
  return m;
}

