// A rule's `expect` (rules/policy.schema.json): which application protocol speaks on a port, and
// the problems the schema cannot state (STARTTLS on a port whose protocol we do not know). Pure.
import type { ServiceExpect } from '../policy/policy-types.js';
import type { Proto } from '../model.js';
import type { DocPath } from '../validated-yaml.js';

export type Expect = ServiceExpect;
export type AppProtocol = 'smtp' | 'imap' | 'pop3' | 'postgres';

/** The protocol a port speaks, and whether TLS starts with the first byte there. */
const PORTS: Record<number, { protocol: AppProtocol; implicit: boolean }> = {
  25: { protocol: 'smtp', implicit: false },
  587: { protocol: 'smtp', implicit: false },
  465: { protocol: 'smtp', implicit: true },
  143: { protocol: 'imap', implicit: false },
  993: { protocol: 'imap', implicit: true },
  110: { protocol: 'pop3', implicit: false },
  995: { protocol: 'pop3', implicit: true },
  5432: { protocol: 'postgres', implicit: false },
};

export function protocolOf(port: number): AppProtocol | null {
  return PORTS[port]?.protocol ?? null;
}

/** How to connect: the expectation decides; without one, the port's convention (465 is TLS). */
export function tlsMode(expect: Expect, port: number): 'implicit' | 'starttls' | 'none' {
  if (expect.tls) return expect.tls;
  if (PORTS[port]?.implicit) return 'implicit';
  return protocolOf(port) ? 'starttls' : 'none';
}

interface Problem {
  path: DocPath;
  message: string;
  level: 'error';
}

/** What the schema cannot say about one rule's expect. */
export function expectProblems(expect: Expect, proto: Proto, ports: readonly { lo: number; hi: number }[], rulePath: DocPath): Problem[] {
  const at = (key: string, message: string): Problem => ({ path: [...rulePath, 'expect', key], message, level: 'error' });
  const out: Problem[] = [];
  if (proto !== 'tcp') return [{ path: [...rulePath, 'expect'], message: 'expect is checked over TCP only: this rule is udp', level: 'error' }];
  const each = ports.flatMap((r) => (r.hi - r.lo < 16 ? Array.from({ length: r.hi - r.lo + 1 }, (_, i) => r.lo + i) : [null]));
  if (expect.tls === 'starttls') {
    const unknown = each.filter((p) => p === null || PORTS[p]?.protocol === undefined || PORTS[p]!.implicit);
    if (unknown.length) {
      out.push(at('tls', `starttls speaks the service's protocol, known on ports 25, 587 (SMTP), 143 (IMAP), 110 (POP3), 5432 (PostgreSQL); not on ${unknown.map((p) => p ?? 'a range').join(', ')}: use implicit, or a rule of its own for those ports`));
    }
  }
  const tlsKeys = (['tls_min', 'cert_days', 'cert_names'] as const).filter((k) => expect[k] !== undefined);
  if (expect.tls === 'none' && tlsKeys.length) out.push(at(tlsKeys[0]!, `${tlsKeys[0]} needs TLS, but tls is none`));
  if (expect.smtp && each.some((p) => p === null || protocolOf(p) !== 'smtp')) {
    out.push(at('smtp', 'smtp checks need SMTP ports (25, 465, 587) only: give the other ports a rule of their own'));
  }
  return out;
}
