// The JSON shapes of findings and listeners, as every command, sink and the journal write them.
import type { Finding, Listener, ProcessInfo } from './model.js';

export function findingJson(f: Finding) {
  return {
    id: f.id,
    kind: f.kind,
    severity: f.severity,
    proto: f.proto,
    port: f.port,
    address: f.address,
    rule: f.rule,
    processes: f.processes.map((p) => ({ pid: p.pid, name: p.name, exe: p.exe, user: p.user })),
    message: f.message,
    remedy: f.remedy,
  };
}

/** E: the listener's exposure (exposure/exposure.ts), when the command computed it. */
export type ListenerJson<E = unknown> = Omit<Listener, 'processes'> & { processes: ProcessInfo[]; exposure?: E };

export function listenerJson<E>(l: Listener, exposure?: E): ListenerJson<E> {
  // Two fixed shapes, no spreads: scan --json builds 10 000 of these (JSON.stringify of them is
  // faster than writing the text by hand).
  const processes = l.processes.map((p) => ({ pid: p.pid, name: p.name, exe: p.exe, user: p.user, cmdline: p.cmdline }));
  const o: ListenerJson<E> = l.interface
    ? { proto: l.proto, family: l.family, address: l.address, port: l.port, interface: l.interface, scope: l.scope, dualStack: l.dualStack, inode: l.inode, processes }
    : { proto: l.proto, family: l.family, address: l.address, port: l.port, scope: l.scope, dualStack: l.dualStack, inode: l.inode, processes };
  if (exposure) o.exposure = exposure;
  return o;
}
