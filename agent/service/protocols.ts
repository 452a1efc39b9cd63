// What the servers say, parsed: SMTP replies and EHLO extensions, IMAP capabilities, POP3 CAPA,
// PostgreSQL's answer to SSLRequest. Pure: each parser takes the text received so far and returns
// null until a whole answer is there.

export interface Parsed<T> {
  value: T;
  /** Characters of the input the answer took. */
  length: number;
}

/** Complete lines (CRLF or LF) at the start of text, and where they end. */
function lines(text: string): { list: string[]; ends: number[] } {
  const list: string[] = [];
  const ends: number[] = [];
  let at = 0;
  for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', at)) {
    list.push(text.slice(at, nl).replace(/\r$/, ''));
    at = nl + 1;
    ends.push(at);
  }
  return { list, ends };
}

export interface SmtpReply {
  code: number;
  lines: string[];
}

/** One SMTP reply: "250-a" … "250 z" (RFC 5321 4.2). A line that is not a reply ends it with code 0. */
export function smtpReply(text: string): Parsed<SmtpReply> | null {
  const { list, ends } = lines(text);
  for (let i = 0; i < list.length; i++) {
    const m = /^([0-9]{3})([ -]|$)(.*)$/.exec(list[i]!);
    if (!m) return { value: { code: 0, lines: list.slice(0, i + 1) }, length: ends[i]! };
    if (m[2] !== '-') return { value: { code: Number(m[1]), lines: list.slice(0, i + 1).map((l) => l.slice(4)) }, length: ends[i]! };
  }
  return null;
}

/** The extensions an EHLO reply announces (the first line is the server's name). */
export function ehloExtensions(reply: SmtpReply): { starttls: boolean; auth: string[] } {
  const ext = reply.lines.slice(1).map((l) => l.trim().toUpperCase());
  const auth = ext.find((l) => /^AUTH[ =]/.test(l));
  return { starttls: ext.includes('STARTTLS'), auth: auth ? auth.slice(5).split(/\s+/).filter(Boolean) : [] };
}

export interface ImapResponse {
  status: string;
  untagged: string[];
}

/** The server's greeting: one untagged line (* OK, * PREAUTH, * BYE). */
export function imapGreeting(text: string): Parsed<string> | null {
  const { list, ends } = lines(text);
  return list.length ? { value: list[0]!, length: ends[0]! } : null;
}

/** Untagged lines up to the tagged status line of `tag`. */
export function imapTagged(text: string, tag: string): Parsed<ImapResponse> | null {
  const { list, ends } = lines(text);
  const i = list.findIndex((l) => l.startsWith(`${tag} `));
  if (i < 0) return null;
  return { value: { status: list[i]!.slice(tag.length + 1).split(' ')[0]!.toUpperCase(), untagged: list.slice(0, i) }, length: ends[i]! };
}

/** Capabilities from "* CAPABILITY …" lines (or a greeting's [CAPABILITY …] code). */
export function imapCapabilities(untagged: readonly string[]): string[] {
  return untagged.flatMap((l) => /^\* (?:OK \[)?CAPABILITY ([^\]]*)/i.exec(l)?.[1]!.toUpperCase().split(/\s+/) ?? []);
}

/** A POP3 status line (+OK / -ERR …). */
export function pop3Status(text: string): Parsed<{ ok: boolean; line: string }> | null {
  const { list, ends } = lines(text);
  return list.length ? { value: { ok: list[0]!.startsWith('+OK'), line: list[0]! }, length: ends[0]! } : null;
}

/** A POP3 multi-line answer (CAPA): the status line, then lines up to ".". -ERR has no body. */
export function pop3Multi(text: string): Parsed<{ ok: boolean; lines: string[] }> | null {
  const { list, ends } = lines(text);
  if (!list.length) return null;
  if (!list[0]!.startsWith('+OK')) return { value: { ok: false, lines: [] }, length: ends[0]! };
  const dot = list.indexOf('.');
  return dot < 0 ? null : { value: { ok: true, lines: list.slice(1, dot).map((l) => l.toUpperCase()) }, length: ends[dot]! };
}

/** PostgreSQL's SSLRequest (protocol 3, "SSLRequest" message): length 8, code 80877103. */
export const PG_SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** The server's one-byte answer: S (go ahead with TLS) or N (no TLS here). */
export function pgSslAnswer(text: string): Parsed<'S' | 'N' | 'other'> | null {
  if (!text.length) return null;
  return { value: text[0] === 'S' ? 'S' : text[0] === 'N' ? 'N' : 'other', length: 1 };
}

/** "TLSv1.2" → 1.2; unknown → 0. */
export function tlsVersionNumber(version: string | null): number {
  const m = /^TLSv(1(?:\.[0-3])?)$/.exec(version ?? '');
  return m ? Number(m[1]) : 0;
}
