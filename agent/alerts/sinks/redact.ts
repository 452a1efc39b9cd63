// The one redaction of secrets in URLs, for every log line and error message about a sink: a
// webhook URL may carry credentials (user:pass@), tokens in its query (?token=…) or a secret path
// (Slack's /services/T…/B…/<secret>). Works on text that is not a valid URL too.

// A URL in prose: up to white space or a quote, without the punctuation that ends a sentence.
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]*[^\s"'<>.,:;!?)]/gi;
const REDACTED = '[redacted]';

/** A path segment that looks like a token: 8+ characters mixing letters and digits, or 24+ of anything. */
function tokenLike(segment: string): boolean {
  return (segment.length >= 8 && /[0-9]/.test(segment) && /[A-Za-z]/.test(segment)) || segment.length >= 24;
}

/** scheme://[redacted]@host:port/path-with-tokens-redacted?key=[redacted]; the fragment is dropped. */
export function redactUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/is.exec(url);
  if (!m) return url;
  const [, scheme, authority = '', path = '', query, fragment] = m;
  const at = authority.lastIndexOf('@');
  const host = at >= 0 ? `${REDACTED}@${authority.slice(at + 1)}` : authority;
  const cleanPath = path
    .split('/')
    .map((s) => (tokenLike(s) ? REDACTED : s))
    .join('/');
  const cleanQuery = query
    ? '?' +
      query
        .slice(1)
        .split('&')
        .map((kv) => (kv.includes('=') ? `${kv.slice(0, kv.indexOf('='))}=${REDACTED}` : kv && REDACTED))
        .join('&')
    : '';
  return `${scheme}${host}${cleanPath}${cleanQuery}${fragment ? `#${REDACTED}` : ''}`;
}

/** Redacts every URL inside a message (errors from fetch or nodemailer may quote one). */
export function redact(text: string): string {
  return text.replace(URL_IN_TEXT, (u) => redactUrl(u));
}
