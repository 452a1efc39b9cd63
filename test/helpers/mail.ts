// A real Postfix (25 with STARTTLS, 587 submission, 465 wrapper mode) with Dovecot as its SASL
// backend, each with a private config under a temp dir; Postfix listens inside a lab namespace.
// stop() ends both (also at process exit); nothing is started on the host's own network.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

export interface Mail {
  dir: string;
  /** postconf -c DIR KEY=VALUE …, then postfix reload. */
  set(settings: Record<string, string>): Promise<void>;
  /** A new certificate for mail.example.test, valid this many days, and settings as set(); one reload. */
  certificate(days: number, settings?: Record<string, string>): Promise<void>;
  stop(): void;
}

const running = new Set<() => void>();
process.on('exit', () => running.forEach((stop) => stop()));

function quiet(cmd: string, args: string[]): string {
  // Postfix writes its errors to stderr only on a terminal, and to its maillog_file otherwise.
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeCertificate(dir: string, days: number): void {
  quiet('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`,
    '-days', String(days), '-subj', '/CN=mail.example.test', '-addext', 'subjectAltName=DNS:mail.example.test']);
  chmodSync(`${dir}/key.pem`, 0o600);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startMail(ns: string): Promise<Mail> {
  const dir = mkdtempSync(`${tmpdir()}/pw-mail-`);
  chmodSync(dir, 0o755); // smtpd (user postfix) reaches Dovecot's auth socket through it
  let dovecot: ChildProcess | null = null;
  let postfixUp = false;
  const pf = `${dir}/postfix`;
  const stop = () => {
    if (postfixUp) {
      try {
        execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', 'postfix', '-c', pf, 'abort'], { stdio: 'ignore' });
      } catch {
        /* already down */
      }
      // abort leaves the master alone only if it is gone already; make sure.
      try {
        const pid = Number(readFileSync(`${dir}/spool/pid/master.pid`, 'utf8').trim());
        if (pid > 1) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      postfixUp = false;
    }
    if (dovecot && dovecot.exitCode === null) dovecot.kill('SIGKILL');
    dovecot = null;
    running.delete(stop);
    rmSync(dir, { recursive: true, force: true });
  };
  running.add(stop);
  try {
    makeCertificate(dir, 365);
    mkdirSync(`${dir}/dovecot`);
    writeFileSync(`${dir}/dovecot/users`, 'alice:{PLAIN}secret\n');
    writeFileSync(`${dir}/dovecot/dovecot.conf`, [
      `base_dir = ${dir}/dovecot/run`,
      `state_dir = ${dir}/dovecot/state`,
      `log_path = ${dir}/dovecot/dovecot.log`,
      'protocols =',
      'ssl = no',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain login',
      `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN ${dir}/dovecot/users\n}`,
      'userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}',
      `service auth {\n  unix_listener ${dir}/dovecot/auth-postfix {\n    mode = 0666\n  }\n}`,
      '',
    ].join('\n'));
    dovecot = spawn('dovecot', ['-c', `${dir}/dovecot/dovecot.conf`, '-F'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(`${dir}/dovecot/auth-postfix`); i++) await sleep(50);
    if (!existsSync(`${dir}/dovecot/auth-postfix`)) throw new Error(`dovecot did not start: ${readFileSync(`${dir}/dovecot/dovecot.log`, 'utf8').slice(-500)}`);

    mkdirSync(pf);
    mkdirSync(`${dir}/spool`);
    mkdirSync(`${dir}/data`);
    chownSync(`${dir}/data`, Number(quiet('id', ['-u', 'postfix']).trim()), 0);
    copyFileSync('/etc/postfix/master.cf', `${pf}/master.cf`);
    writeFileSync(`${pf}/main.cf`, [
      'compatibility_level = 3.6',
      `queue_directory = ${dir}/spool`,
      `data_directory = ${dir}/data`,
      `maillog_file_prefixes = ${dir}`,
      `maillog_file = ${dir}/maillog`,
      'myhostname = mail.example.test',
      'mydomain = example.test',
      'mydestination = example.test',
      'mynetworks = 127.0.0.0/8',
      'inet_interfaces = all',
      'inet_protocols = ipv4',
      'alias_maps =',
      'alias_database =',
      `smtpd_tls_cert_file = ${dir}/cert.pem`,
      `smtpd_tls_key_file = ${dir}/key.pem`,
      'smtpd_tls_security_level = may',
      'smtpd_tls_protocols = >=TLSv1.2',
      'smtpd_tls_auth_only = yes',
      'smtpd_sasl_type = dovecot',
      `smtpd_sasl_path = ${dir}/dovecot/auth-postfix`,
      'smtpd_sasl_auth_enable = yes',
      // One client per smtpd process: after a reload no process started before it answers.
      'max_use = 1',
      '',
    ].join('\n'));
    quiet('postconf', ['-c', pf, '-F', '*/*/chroot = n']);
    quiet('postconf', ['-c', pf, '-M', 'submission/inet=submission inet n - n - - smtpd', 'smtps/inet=smtps inet n - n - - smtpd', 'postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd']);
    quiet('postconf', ['-c', pf, '-P', 'smtps/inet/smtpd_tls_wrappermode=yes', 'submission/inet/smtpd_tls_security_level=encrypt']);
    postfixUp = true;
    try {
      quiet('nsenter', [`--net=/run/netns/${ns}`, '--', 'postfix', '-c', pf, 'start']);
    } catch (err) {
      const log = existsSync(`${dir}/maillog`) ? readFileSync(`${dir}/maillog`, 'utf8').slice(-800) : '';
      throw new Error(`postfix did not start: ${(err as Error).message}\n${log}`, { cause: err });
    }
  } catch (err) {
    stop();
    throw err;
  }
  // What `postfix reload` does, without its checks (seconds on a loaded machine): SIGHUP the master.
  // Done when the master logs it has read the configuration again (smtpd processes started from
  // then on read the new settings; max_use = 1 retires the others after their one client).
  const reloads = () => (existsSync(`${dir}/maillog`) ? (readFileSync(`${dir}/maillog`, 'utf8').match(/master\[\d+\]: reload /g) ?? []).length : 0);
  const reload = async () => {
    const before = reloads();
    process.kill(Number(readFileSync(`${dir}/spool/pid/master.pid`, 'utf8').trim()), 'SIGHUP');
    for (let i = 0; i < 300 && reloads() <= before; i++) await sleep(50);
    if (reloads() <= before) throw new Error(`postfix did not reload within 15 s: ${readFileSync(`${dir}/maillog`, 'utf8').slice(-500)}`);
  };
  return {
    dir,
    async set(settings) {
      quiet('postconf', ['-c', pf, ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
      await reload();
    },
    async certificate(days, settings = {}) {
      if (Object.keys(settings).length) quiet('postconf', ['-c', pf, ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
      makeCertificate(dir, days);
      await reload();
    },
    stop,
  };
}

/**
 * Dovecot serving IMAP (143 STARTTLS, 993 TLS) and POP3 (110 STLS, 995 TLS) inside a namespace,
 * with a certificate valid `days` days; `ssl: false` offers no TLS at all (993/995 still listen,
 * speaking plain text).
 */
export async function startImap(ns: string, opts: { ssl: boolean; days: number }): Promise<{ stop(): Promise<void> }> {
  const dir = mkdtempSync(`${tmpdir()}/pw-imap-`);
  chmodSync(dir, 0o755);
  let child: ChildProcess | null = null;
  // At process exit: no waiting, just gone.
  const kill = () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  };
  running.add(kill);
  /** nsenter execs Dovecot's master: SIGTERM takes its login processes down, then it exits. */
  const stop = async () => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    child = null;
    running.delete(kill);
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  };
  try {
    makeCertificate(dir, opts.days);
    writeFileSync(`${dir}/users`, '');
    writeFileSync(`${dir}/dovecot.conf`, [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      `log_path = ${dir}/dovecot.log`,
      'protocols = imap pop3',
      'listen = *',
      opts.ssl ? `ssl = yes\nssl_cert = <${dir}/cert.pem\nssl_key = <${dir}/key.pem` : 'ssl = no',
      `mail_location = maildir:${dir}/mail/%u`,
      `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN ${dir}/users\n}`,
      'userdb {\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}',
      // Without TLS, 993/995 are plain listeners: what a broken configuration looks like.
      opts.ssl ? '' : 'service imap-login {\n  inet_listener imaps {\n    port = 993\n    ssl = no\n  }\n}\nservice pop3-login {\n  inet_listener pop3s {\n    port = 995\n    ssl = no\n  }\n}',
      '',
    ].join('\n'));
    child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'dovecot', '-c', `${dir}/dovecot.conf`, '-F'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(`${dir}/run/master.pid`); i++) await sleep(50);
    await sleep(300); // the login processes are listening once the master has started them
    if (!existsSync(`${dir}/run/master.pid`)) throw new Error(`dovecot did not start: ${existsSync(`${dir}/dovecot.log`) ? readFileSync(`${dir}/dovecot.log`, 'utf8').slice(-500) : ''}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
