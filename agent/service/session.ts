// One bounded conversation with a server: connect, wait for whole answers (parsed by the pure
// parsers in protocols.ts), write commands, upgrade to TLS. Everything shares one deadline: a
// server that accepts and never speaks ends the session within it, never hangs it.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket, type ConnectionOptions } from 'node:tls';
import type { Parsed } from './protocols.js';

/** More than this without a whole answer is not the protocol we speak (or a flood): give up. */
const MAX_ANSWER = 64 * 1024;

/** The server did not answer in time: a finding of its own (service-unanswered). */
export class SilentError extends Error {}

/** Client TLS settings that let us see what the server offers, weak versions included. */
export function tlsOptions(servername: string | undefined, maxVersion?: ConnectionOptions['maxVersion']): ConnectionOptions {
  return {
    rejectUnauthorized: false, // we judge the certificate ourselves (cert-expiring, cert-name-mismatch)
    servername,
    minVersion: 'TLSv1',
    maxVersion,
    ciphers: 'DEFAULT:@SECLEVEL=0',
  };
}

export class Session {
  private socket: Socket;
  private buffer = '';
  private closed: Error | null = null;
  private wake: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;
  private expired = false;

  private constructor(socket: Socket, private readonly timeoutMs: number) {
    this.socket = socket;
    this.listen(socket);
    this.timer = setTimeout(() => {
      this.expired = true;
      this.fail(new SilentError(`no answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
  }

  /** Opens a TCP (or, with tls, an implicit TLS) connection; rejects within timeoutMs. */
  static open(host: string, port: number, timeoutMs: number, tls?: ConnectionOptions): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket: Socket = tls ? tlsConnect({ host, port, ...tls }) : tcpConnect({ host, port });
      const s = new Session(socket, timeoutMs);
      const onError = (err: Error) => {
        s.close();
        reject(s.expired ? new SilentError(tls ? `no TLS handshake within ${timeoutMs / 1000} s` : `no connection within ${timeoutMs / 1000} s`) : err);
      };
      s.waitFor(tls ? 'secureConnect' : 'connect').then(() => resolve(s), onError);
    });
  }

  get tlsSocket(): TLSSocket | null {
    return 'getPeerCertificate' in this.socket ? (this.socket as TLSSocket) : null;
  }

  private listen(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      if (this.buffer.length > MAX_ANSWER) this.fail(new Error(`more than ${MAX_ANSWER / 1024} KiB without a whole answer`));
      this.wake?.();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the server closed the connection')));
  }

  private fail(err: Error): void {
    if (!this.closed) this.closed = err;
    this.socket.destroy();
    this.wake?.();
  }

  private waitFor(event: 'connect' | 'secureConnect'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once(event, () => {
        this.wake = null;
        resolve();
      });
      this.wake = () => {
        if (this.closed) reject(this.closed);
      };
    });
  }

  /** Waits for one whole answer; what follows it stays buffered. */
  read<T>(parse: (text: string) => Parsed<T> | null, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const got = parse(this.buffer);
        if (got) {
          this.buffer = this.buffer.slice(got.length);
          this.wake = null;
          resolve(got.value);
        } else if (this.closed) {
          this.wake = null;
          reject(this.closed instanceof SilentError ? new SilentError(`${this.closed.message} (waiting for ${what})`) : this.closed);
        }
      };
      this.wake = check;
      check();
    });
  }

  write(data: string | Buffer): void {
    if (!this.closed) this.socket.write(data);
  }

  /** STARTTLS and friends: the same connection, now under TLS. */
  async startTls(opts: ConnectionOptions): Promise<TLSSocket> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    this.buffer = '';
    const secure = tlsConnect({ socket: plain, ...opts });
    this.socket = secure;
    this.listen(secure);
    await this.waitFor('secureConnect');
    return secure;
  }

  close(): void {
    clearTimeout(this.timer);
    if (!this.closed) this.closed = new Error('closed');
    this.socket.destroy();
  }
}
