// An observation (observe.ts) against a rule's expect: one check per expectation, passed or not,
// and the failed ones as findings. Pure: the clock is a parameter.
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { Finding, FindingKind, Severity } from '../model.js';
import { tlsMode, type Expect } from './expect.js';
import { RELAY_TO, type Observation } from './observe.js';
import { tlsVersionNumber } from './protocols.js';

export type CheckName = Extract<FindingKind, 'service-unanswered' | 'tls-missing' | 'tls-weak' | 'cert-expiring' | 'cert-name-mismatch' | 'smtp-plaintext-auth' | 'open-relay'>;

export interface Check {
  /** The finding kind this check raises when it fails. */
  name: CheckName;
  ok: boolean;
  detail: string;
  severity: Severity;
}

const DAY_MS = 86_400_000;

const REMEDY: Record<CheckName, string> = {
  'service-unanswered': 'see whether the service hangs (its logs, its process), or whether it still speaks the protocol the port suggests',
  'tls-missing': 'configure TLS for the service (certificate and key; STARTTLS or implicit TLS as the rule expects), then reload it',
  'tls-weak': 'raise the minimum TLS version in the service configuration (Postfix: smtpd_tls_protocols = >=TLSv1.2; Dovecot: ssl_min_protocol), then reload it',
  'cert-expiring': 'renew the certificate and reload the service (certbot renew, or your CA), and check the renewal job',
  'cert-name-mismatch': 'get a certificate for the names clients use (subjectAltName), or correct cert_names in the policy',
  'smtp-plaintext-auth': 'offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes), then reload it',
  'open-relay': 'refuse mail for foreign domains unless authenticated (Postfix: mynetworks, smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination)',
};

export function remedyFor(name: CheckName): string {
  return REMEDY[name];
}

/** Every check the expectation asks for that the observation can decide. */
export function judge(expect: Expect, obs: Observation, now: Date): Check[] {
  const out: Check[] = [];
  const add = (name: CheckName, ok: boolean, severity: Severity, detail: string) => out.push({ name, ok, detail, severity });
  if (obs.failure?.silent) {
    add('service-unanswered', false, 'high', `accepted the connection but ${obs.failure.message}`);
    return out; // nothing else can be decided
  }
  const mode = tlsMode(expect, obs.port);
  const failed = obs.failure ? `: ${obs.failure.message}` : '';
  if (mode !== 'none') {
    const how = mode === 'implicit' ? 'TLS from the first byte' : 'STARTTLS';
    if (obs.tls) add('tls-missing', true, 'high', `${how}: ${obs.tls.version}`);
    else if (mode === 'starttls' && obs.starttlsOffered === false) add('tls-missing', false, 'high', 'STARTTLS is not offered');
    else add('tls-missing', false, 'high', `no ${how}${failed}`);
  }
  if (obs.tls && expect.tls_min) {
    const version = tlsVersionNumber(obs.tls.version);
    const weak = version < Number(expect.tls_min) ? obs.tls.version : obs.weakVersion;
    add('tls-weak', !weak, 'medium', weak ? `accepts ${weak}, older than ${expect.tls_min}` : `nothing older than TLS ${expect.tls_min} accepted`);
  }
  const cert = obs.tls?.cert;
  if (obs.tls && !cert && (expect.cert_days !== undefined || expect.cert_names)) add('cert-expiring', false, 'high', 'the server sent no certificate');
  if (cert) {
    const days = Math.floor((Date.parse(cert.validTo) - now.getTime()) / DAY_MS);
    const expired = Date.parse(cert.validTo) <= now.getTime();
    const min = expect.cert_days ?? 0;
    const short = expired || days < min;
    const severity: Severity = expired || days < 3 ? 'high' : 'medium';
    if (expect.cert_days !== undefined || expired) {
      add('cert-expiring', !short, short ? severity : 'medium',
        expired ? `the certificate expired at ${cert.validTo}` : `the certificate is valid until ${cert.validTo} (${days} day${days === 1 ? '' : 's'} left${short ? `, fewer than ${min}` : ''})`);
    }
    for (const name of expect.cert_names ?? []) {
      const err = checkServerIdentity(name, { subject: { CN: cert.subjectCN ?? undefined }, subjectaltname: cert.subjectaltname ?? undefined } as PeerCertificate);
      add('cert-name-mismatch', !err, 'medium', err ? `not valid for ${name} (${cert.subjectaltname ?? `CN=${cert.subjectCN ?? '-'}`})` : `valid for ${name}`);
    }
  }
  if (expect.smtp?.auth === 'tls-only' && obs.plaintextAuth !== null) {
    const plain = obs.plaintextAuth.length > 0;
    add('smtp-plaintext-auth', !plain, 'high', plain ? `AUTH ${obs.plaintextAuth.join(' ')} is offered before STARTTLS` : 'AUTH is not offered before TLS');
  }
  if (expect.smtp?.relay === 'refuse' && obs.relay) {
    const accepted = obs.relay.code >= 200 && obs.relay.code < 300;
    add('open-relay', !accepted, 'critical', `RCPT TO:<${RELAY_TO}> (a domain this server is not responsible for): ${obs.relay.code} ${obs.relay.text}`);
  }
  return out;
}

/** The failed checks of one listener's service as findings (for check and the agent), one per kind. */
export function serviceFindings(checks: readonly Check[], at: { port: number; address: string; rule: string; place: string; processes: Finding['processes'] }): Finding[] {
  const byKind = new Map<CheckName, Check[]>();
  for (const c of checks) if (!c.ok) byKind.set(c.name, [...(byKind.get(c.name) ?? []), c]);
  return [...byKind].map(([name, failed]) => ({
    id: `${name}:tcp/${at.port}`,
    kind: name,
    severity: failed[0]!.severity,
    proto: 'tcp',
    port: at.port,
    address: at.address,
    rule: at.rule,
    processes: at.processes,
    message: `${at.place}: ${failed.map((c) => c.detail).join('; ')} (rule "${at.rule}")`,
    remedy: REMEDY[name],
  }));
}
