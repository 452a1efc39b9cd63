// Connects to one service and records what it offers: TLS (implicit or by the protocol's STARTTLS),
// the version and certificate, SMTP AUTH before TLS, and — when asked — the SMTP relay test
// (EHLO, MAIL FROM, RCPT TO at a foreign domain; never DATA; QUIT). The result is plain data
// (JSON-safe: the netns child sends it back), judged by judge.ts.
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { protocolOf, tlsMode, type AppProtocol, type Expect } from './expect.js';
import {
  ehloExtensions, imapCapabilities, imapGreeting, imapTagged, pgSslAnswer, PG_SSL_REQUEST, pop3Multi, pop3Status, smtpReply, tlsVersionNumber,
} from './protocols.js';
import { Session, SilentError, tlsOptions } from './session.js';

/** A greeting other than 220: a refusal (421, 554) says its code; anything else is not SMTP. */
function smtpGreetingProblem(hello: { code: number; lines: string[] }): string {
  const said = one(hello.lines.join(' '));
  return hello.code ? `the SMTP greeting was ${hello.code} ${said}` : `not an SMTP server: it greeted with ${JSON.stringify(said)}`;
}

export interface ServiceTarget {
  host: string;
  port: number;
  expect: Expect;
  /** Run the SMTP relay test (probe, for rules with smtp.relay: refuse that allow the prober). */
  relayTest: boolean;
  timeoutMs: number;
}

export interface CertInfo {
  subjectCN: string | null;
  subjectaltname: string | null;
  /** ISO time. */
  validTo: string;
}

export interface Observation {
  host: string;
  port: number;
  /** The dialogue stopped early: why, in one line; silent when the server did not answer in time. */
  failure: { message: string; silent: boolean } | null;
  /** The TLS session we got, if any. */
  tls: { mode: 'implicit' | 'starttls'; version: string; cert: CertInfo | null } | null;
  /** The protocol's STARTTLS was announced (null: not a STARTTLS dialogue, or not reached). */
  starttlsOffered: boolean | null;
  /** SMTP AUTH mechanisms announced before TLS (null: not SMTP, or not reached). */
  plaintextAuth: string[] | null;
  /** A version older than tls_min the server accepted, when one was tried and accepted. */
  weakVersion: string | null;
  /** The relay test's RCPT TO reply (null: not run or not reached). */
  relay: { code: number; text: string } | null;
}

/** Where the relay test pretends to send mail: example.net (RFC 2606) belongs to no real server. */
export const RELAY_FROM = 'portwarden-probe@example.org';
export const RELAY_TO = 'portwarden-relay-test@example.net';

const one = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 200);

function certInfo(c: PeerCertificate): CertInfo | null {
  if (!c || !c.valid_to) return null;
  const cn = c.subject?.CN;
  return { subjectCN: Array.isArray(cn) ? (cn[0] ?? null) : (cn ?? null), subjectaltname: c.subjectaltname ?? null, validTo: new Date(c.valid_to).toISOString() };
}

function servername(host: string, expect: Expect): string | undefined {
  const name = expect.cert_names?.find((n) => !n.includes('*'));
  if (name) return name;
  return isIP(host) ? undefined : host;
}

/** One SMTP command and its reply. */
async function smtp(s: Session, line: string, what: string) {
  s.write(`${line}\r\n`);
  return s.read(smtpReply, what);
}

/** Before TLS: bring the protocol to the point where the next byte may be a TLS handshake (or find out it cannot be). */
const STARTTLS: Record<AppProtocol, (s: Session, obs: Observation) => Promise<boolean>> = {
  async smtp(s, obs) {
    const hello = await s.read(smtpReply, 'the SMTP greeting');
    if (hello.code !== 220) throw new Error(smtpGreetingProblem(hello));
    const ehlo = await smtp(s, `EHLO ${hostname()}`, 'the EHLO reply');
    if (ehlo.code !== 250) throw new Error(`EHLO refused: ${ehlo.code} ${one(ehlo.lines.join(' '))}`);
    const ext = ehloExtensions(ehlo);
    obs.starttlsOffered = ext.starttls;
    obs.plaintextAuth = ext.auth;
    if (!ext.starttls) return false;
    const go = await smtp(s, 'STARTTLS', 'the STARTTLS reply');
    if (go.code !== 220) throw new Error(`STARTTLS refused: ${go.code} ${one(go.lines.join(' '))}`);
    return true;
  },
  async imap(s, obs) {
    const hello = await s.read(imapGreeting, 'the IMAP greeting');
    let caps = imapCapabilities([hello]);
    if (!caps.length) {
      s.write('pw1 CAPABILITY\r\n');
      caps = imapCapabilities((await s.read((t) => imapTagged(t, 'pw1'), 'the CAPABILITY reply')).untagged);
    }
    obs.starttlsOffered = caps.includes('STARTTLS');
    if (!obs.starttlsOffered) return false;
    s.write('pw2 STARTTLS\r\n');
    const go = await s.read((t) => imapTagged(t, 'pw2'), 'the STARTTLS reply');
    if (go.status !== 'OK') throw new Error(`STARTTLS refused: ${go.status}`);
    return true;
  },
  async pop3(s, obs) {
    const hello = await s.read(pop3Status, 'the POP3 greeting');
    if (!hello.ok) throw new Error(`greeting: ${one(hello.line)}`);
    s.write('CAPA\r\n');
    const capa = await s.read(pop3Multi, 'the CAPA reply');
    obs.starttlsOffered = capa.lines.includes('STLS');
    if (!obs.starttlsOffered) return false;
    s.write('STLS\r\n');
    const go = await s.read(pop3Status, 'the STLS reply');
    if (!go.ok) throw new Error(`STLS refused: ${one(go.line)}`);
    return true;
  },
  async postgres(s, obs) {
    s.write(PG_SSL_REQUEST);
    const answer = await s.read(pgSslAnswer, 'the answer to SSLRequest');
    obs.starttlsOffered = answer === 'S';
    if (answer === 'other') throw new Error('the answer to SSLRequest is neither S nor N: not PostgreSQL?');
    return answer === 'S';
  },
};

function recordTls(s: Session, obs: Observation, mode: 'implicit' | 'starttls'): void {
  const sock = s.tlsSocket!;
  obs.tls = { mode, version: sock.getProtocol() ?? 'unknown', cert: certInfo(sock.getPeerCertificate()) };
}

/** After TLS (or without it): the SMTP relay test, then QUIT. */
async function smtpAfter(s: Session, obs: Observation, t: ServiceTarget): Promise<void> {
  if (obs.tls?.mode === 'implicit') {
    const hello = await s.read(smtpReply, 'the SMTP greeting');
    if (hello.code !== 220) throw new Error(smtpGreetingProblem(hello));
  }
  if (t.relayTest) {
    if (obs.tls) await smtp(s, `EHLO ${hostname()}`, 'the EHLO reply');
    const from = await smtp(s, `MAIL FROM:<${RELAY_FROM}>`, 'the MAIL FROM reply');
    if (from.code === 250) {
      const rcpt = await smtp(s, `RCPT TO:<${RELAY_TO}>`, 'the RCPT TO reply');
      obs.relay = { code: rcpt.code, text: one(rcpt.lines.join(' ')) };
      await smtp(s, 'RSET', 'the RSET reply');
    } else {
      obs.relay = { code: from.code, text: `MAIL FROM refused: ${one(from.lines.join(' '))}` };
    }
  }
  s.write('QUIT\r\n');
}

/** Observes one service; never throws (a failure is part of the observation). */
export async function observe(t: ServiceTarget): Promise<Observation> {
  const obs: Observation = { host: t.host, port: t.port, failure: null, tls: null, starttlsOffered: null, plaintextAuth: null, weakVersion: null, relay: null };
  const protocol = protocolOf(t.port);
  const mode = tlsMode(t.expect, t.port);
  const name = servername(t.host, t.expect);
  let s: Session | null = null;
  try {
    if (mode === 'implicit') {
      s = await Session.open(t.host, t.port, t.timeoutMs, tlsOptions(name));
      recordTls(s, obs, 'implicit');
    } else {
      s = await Session.open(t.host, t.port, t.timeoutMs);
      // A protocol we do not know: the TCP connection is all there is to check.
      if (protocol && (await STARTTLS[protocol](s, obs))) {
        await s.startTls(tlsOptions(name));
        recordTls(s, obs, 'starttls');
      }
    }
    if (protocol === 'smtp') await smtpAfter(s, obs, t);
  } catch (err) {
    obs.failure = { message: one((err as Error).message), silent: err instanceof SilentError };
  } finally {
    s?.close();
  }
  if (obs.tls && t.expect.tls_min) obs.weakVersion = await olderAccepted(t, mode, name);
  return obs;
}

/** Tries a handshake below tls_min; the version the server accepted, or null. */
async function olderAccepted(t: ServiceTarget, mode: 'implicit' | 'starttls' | 'none', name: string | undefined): Promise<string | null> {
  const below = t.expect.tls_min === '1.3' ? 'TLSv1.2' : 'TLSv1.1';
  const opts = tlsOptions(name, below);
  let s: Session | null = null;
  try {
    if (mode === 'implicit') s = await Session.open(t.host, t.port, t.timeoutMs, opts);
    else {
      s = await Session.open(t.host, t.port, t.timeoutMs);
      const scratch: Observation = { host: t.host, port: t.port, failure: null, tls: null, starttlsOffered: null, plaintextAuth: null, weakVersion: null, relay: null };
      if (!(await STARTTLS[protocolOf(t.port)!](s, scratch))) return null;
      await s.startTls(opts);
    }
    const v = s.tlsSocket?.getProtocol() ?? null;
    return v && tlsVersionNumber(v) < Number(t.expect.tls_min) ? v : null;
  } catch {
    return null; // refused: as it should be
  } finally {
    if (s && protocolOf(t.port) === 'smtp') s.write('QUIT\r\n');
    s?.close();
  }
}
