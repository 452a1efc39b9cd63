// The operator's extra CA certificates for our TLS clients (webhook, Alertmanager, e-mail sinks).
// Node reads NODE_EXTRA_CA_CERTS' file at every start (~85 ms measured for Debian's bundle), yet
// only those sinks need it. So the `portwarden` launcher (cli.js's shebang) starts Node without it
// and passes its path on as PORTWARDEN_EXTRA_CA_CERTS; the file is read here, with the first TLS
// connection. Started as `node cli.js`, Node has loaded it itself and nothing is done here.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

let cached: { ca: string[] } | null | undefined;

/**
 * The `ca` option for a TLS connection: Node's own roots and the operator's file. Null when Node's
 * default applies. An unreadable file throws, naming it (the connection would fail anyway).
 */
export function extraCaOption(env: NodeJS.ProcessEnv = process.env): { ca: string[] } | null {
  if (cached !== undefined) return cached;
  const file = env.PORTWARDEN_EXTRA_CA_CERTS;
  if (!file || env.NODE_EXTRA_CA_CERTS) return (cached = null);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read NODE_EXTRA_CA_CERTS file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return (cached = { ca: [...rootCertificates, pem] });
}
