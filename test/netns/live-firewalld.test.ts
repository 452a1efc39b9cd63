// The real firewalld (Debian's 1.3, nftables backend) inside the lab's server namespace, on a
// private system D-Bus and a private mount namespace: zones with services, a source-limited rich
// rule, a source-bound zone, and forward-port 8089 → 9090 (a redirect in its prerouting nat chain).
// Every prediction of `scan --json` and every `explain` verdict must equal a real connect from the
// lab's clients. Skipped (with the reason) where firewalld cannot start, unless CI=true: it does
// start on the project's machines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { needsRootAnd } from '../helpers/env.js';
import { createLab, startListeners, type Host } from '../helpers/lab.js';
import { judge, newTally, report } from '../helpers/judge.js';
import { client, startFirewalld, type Manager } from '../helpers/managers.js';

const LISTENING = [22, 80, 8080, 8443, 9090];
const PORTS = [...LISTENING, 8089];

test('live firewalld 1.3: scan and explain match real connects through zones, services, rich rules and forward-port', async (t) => {
  if (!needsRootAnd(t, 'firewalld', 'firewall-cmd', 'dbus-daemon', 'unshare', 'nsenter', 'nft', 'ip', 'ss', 'conntrack')) return;
  const tally = newTally();
  const lab = createLab(2);
  const ns = lab.server.ns;
  const [c1, c2] = lab.clients as [Host, Host];
  let fw: Manager | null = null;
  let listener: ChildProcess | null = null;
  try {
    try {
      fw = await startFirewalld(ns);
    } catch (err) {
      const reason = `firewalld does not start here: ${(err as Error).message}`;
      if (process.env.CI === 'true') throw new Error(reason, { cause: err });
      console.log(`# skipped: ${reason}`);
      t.skip(reason);
      return;
    }
    const cmd = (...args: string[]) => client(fw!, 'firewall-cmd', args);
    listener = await startListeners(ns, LISTENING.map((port) => ({ proto: 'tcp' as const, host: '::', port, ipv6Only: false })));
    assert.equal((await cmd('--get-default-zone')).trim(), 'public');

    // 1. The default zone with its services, and http added: 22 and 80 open to all, the rest refused.
    await cmd('--zone=public', '--add-service=http');
    const rows = await judge(lab, 'public zone: ssh, http', PORTS, tally);
    assert.equal(rows.find((r) => r.port === 22 && r.family === 6)?.exposure.verdict, 'any');

    // 2. Rich rules limited to c1's addresses.
    await cmd('--zone=public', `--add-rich-rule=rule family="ipv4" source address="${c1.v4}" port port="8443" protocol="tcp" accept`);
    await cmd('--zone=public', `--add-rich-rule=rule family="ipv6" source address="${c1.v6}" port port="8443" protocol="tcp" accept`);
    await judge(lab, 'rich rules: 8443 from c1', PORTS, tally);

    // 3. A zone bound to c2's addresses, with a port of its own.
    await cmd('--zone=internal', `--add-source=${c2.v4}`, `--add-source=${c2.v6}`);
    await cmd('--zone=internal', '--add-port=8080/tcp');
    await judge(lab, 'internal zone for c2: 8080', PORTS, tally);

    // 4. 9090 for c1 alone, and forward-port 8089 → 9090 for everyone in public: c2, refused on
    // 9090 itself, reaches the 9090 listener through 8089.
    await cmd('--zone=public', `--add-rich-rule=rule family="ipv4" source address="${c1.v4}" port port="9090" protocol="tcp" accept`);
    await cmd('--zone=public', '--add-forward-port=port=8089:proto=tcp:toport=9090');
    const after = await judge(lab, 'forward-port 8089 → 9090', PORTS, tally);
    const redirected = after.find((r) => r.port === 9090 && r.exposure.perPort);
    assert.ok(redirected, `the 9090 listener says which port is redirected to it: ${JSON.stringify(after.filter((r) => r.port === 9090))}`);
  } finally {
    listener?.kill('SIGKILL');
    if (fw) await fw.stop();
    lab.destroy();
  }
  report('live firewalld', tally, (m) => t.diagnostic(m));
});
