// Socket inode → owning processes, by walking /proc/*/fd ourselves. We never trust ss -p's users:
// field, which prints the process's self-chosen comm unescaped and can be forged.
// Walking grows with every fd on the host, so the index is kept between scans and re-walked only
// when a socket inode appears that the last walk did not see (the daemon's warm path).
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { ProcessInfo } from '../model.js';

export interface OwnerIndexOptions {
  procRoot?: string;
  passwdPath?: string;
  /** Read command lines too. Off by default: they may hold passwords (`--password=...`). */
  cmdline?: boolean;
}

export class OwnerIndex {
  private readonly procRoot: string;
  private readonly passwdPath: string;
  private readonly withCmdline: boolean;
  private inodePids = new Map<number, number[]>();
  /** Inodes the last walk looked for and found no owner of (e.g. held by a process we cannot see). */
  private unowned = new Set<number>();
  private infos = new Map<number, ProcessInfo>();
  private users: Map<number, string> | null = null;
  /** Number of full /proc walks done: lets tests and benchmarks see the cache work. */
  walks = 0;

  constructor(opts: OwnerIndexOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.passwdPath = opts.passwdPath ?? '/etc/passwd';
    this.withCmdline = opts.cmdline ?? false;
  }

  /** Owners of each inode; walks /proc only when some inode is new or a cached owner has exited. */
  owners(inodes: Iterable<number>): Map<number, ProcessInfo[]> {
    const wanted = [...inodes].filter((i) => i > 0);
    if (!this.isFresh(wanted)) this.walk(new Set(wanted));
    const out = new Map<number, ProcessInfo[]>();
    // One array per single owner, shared by its sockets: a server with 10 000 sockets is one process.
    const alone = new Map<number, ProcessInfo[]>();
    for (const inode of wanted) {
      const pids = this.inodePids.get(inode);
      if (!pids) out.set(inode, []);
      else if (pids.length > 1) out.set(inode, pids.map((pid) => this.info(pid)));
      else {
        let infos = alone.get(pids[0]!);
        if (!infos) alone.set(pids[0]!, (infos = [this.info(pids[0]!)]));
        out.set(inode, infos);
      }
    }
    return out;
  }

  private isFresh(wanted: number[]): boolean {
    if (this.walks === 0) return false;
    const pids = new Set<number>();
    for (const inode of wanted) {
      const owners = this.inodePids.get(inode);
      if (owners) owners.forEach((p) => pids.add(p));
      else if (!this.unowned.has(inode)) return false;
    }
    for (const pid of pids) if (!existsSync(`${this.procRoot}/${pid}`)) return false;
    return true;
  }

  private walk(wanted: Set<number>): void {
    this.walks++;
    // Each process's links read as soon as its fd directory is listed: no list of 50 000 paths
    // kept alive (measured: ~10 % less CPU than listing every fd first; readlink itself is most
    // of the rest, and is the kernel's time, as for ss -p).
    const map = new Map<number, number[]>();
    for (const entry of safeReaddir(this.procRoot)) {
      const c = entry.charCodeAt(0);
      if (c < 48 || c > 57) continue; // not a pid
      const fdDir = `${this.procRoot}/${entry}/fd/`;
      const pid = Number(entry);
      for (const fd of safeReaddir(fdDir)) {
        let target: string;
        try {
          target = readlinkSync(fdDir + fd);
        } catch {
          continue; // fd closed meanwhile, or not ours to read
        }
        // "socket:[12345]"; the first-character test skips files, pipes and anon inodes cheaply.
        if (target.charCodeAt(0) !== 115 || !target.startsWith('socket:[')) continue;
        let inode = 0; // the digits, without a substring per fd
        for (let i = 8; i < target.length - 1; i++) inode = inode * 10 + target.charCodeAt(i) - 48;
        if (!wanted.has(inode)) continue;
        const owners = map.get(inode);
        if (!owners) map.set(inode, [pid]);
        else if (!owners.includes(pid)) owners.push(pid);
      }
    }
    this.inodePids = map;
    this.unowned = new Set([...wanted].filter((i) => !map.has(i)));
    this.infos.clear();
  }

  private info(pid: number): ProcessInfo {
    let info = this.infos.get(pid);
    if (!info) {
      info = readProcess(this.procRoot, pid, (uid) => this.userName(uid), this.withCmdline);
      this.infos.set(pid, info);
    }
    return info;
  }

  private userName(uid: number): string {
    if (!this.users) this.users = parsePasswd(safeRead(this.passwdPath) ?? '');
    return this.users.get(uid) ?? String(uid);
  }
}

/** Reads one process; any field it cannot read (or cmdline, unless asked for) becomes "unknown"/null instead of an error. */
export function readProcess(procRoot: string, pid: number, userName: (uid: number) => string, withCmdline = false): ProcessInfo {
  const dir = `${procRoot}/${pid}`;
  const comm = safeRead(`${dir}/comm`);
  let exe: string | null;
  try {
    exe = readlinkSync(`${dir}/exe`);
  } catch {
    exe = null; // kernel threads, exited processes, or no permission
  }
  const status = safeRead(`${dir}/status`);
  const uidMatch = status ? /^Uid:\s+(\d+)/m.exec(status) : null;
  const cmdline = withCmdline ? safeRead(`${dir}/cmdline`) : null;
  return {
    pid,
    name: comm === null ? 'unknown' : comm.replace(/\n$/, ''),
    exe,
    user: uidMatch?.[1] !== undefined ? userName(Number(uidMatch[1])) : 'unknown',
    cmdline: cmdline === null || cmdline === '' ? null : cmdline.replace(/\0+$/, '').split('\0').join(' '),
  };
}

export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid !== undefined && /^[0-9]+$/.test(uid) && !users.has(Number(uid))) users.set(Number(uid), name);
  }
  return users;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
