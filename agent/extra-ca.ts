// The operator's extra CA certificates for our TLS clients (webhook, Alertmanager, e-mail sinks).
// Node reads NODE_EXTRA_CA_CERTS' file at every start (~85 ms measured for Debian's bundle), yet
// only those sinks need it. So the `portwarden` command (cli.js's shebang) starts Node without it
// and passes its path on as PORTWARDEN_EXTRA_CA_CERTS; the file is read here, with the first TLS
// connection. Started as `node cli.js`, Node has loaded it itself and nothing is done here.
import { readFileSync } from 'node:fs';

let cached: { ca: string[] } | null | undefined;

/**
 * The `ca` option for a TLS connection: Node's own roots and the operator's file; null when Node's
 * default applies. An unreadable file throws, naming it (the connection would fail anyway), and is
 * tried again at the next call.
 */
export async function extraCaOption(): Promise<{ ca: string[] } | null> {
  if (cached !== undefined) return cached;
  const file = process.env.PORTWARDEN_EXTRA_CA_CERTS;
  if (!file || process.env.NODE_EXTRA_CA_CERTS) return (cached = null);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read NODE_EXTRA_CA_CERTS file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  // node:tls only here: the daemon loads TLS only for a sink that uses it (~1 MB resident).
  const { rootCertificates } = await import('node:tls');
  return (cached = { ca: [...rootCertificates, pem] });
}
