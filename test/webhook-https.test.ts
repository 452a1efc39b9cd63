// The TLS sinks trust what the operator's NODE_EXTRA_CA_CERTS names, however portwarden starts: a
// real HTTPS receiver (webhook, Node's http client, not fetch) and a real SMTP server with implicit
// TLS (e-mail, nodemailer), on 127.0.0.1, with a certificate only that file vouches for.
//  - `node cli.js`: Node loads the file at start;
//  - the `portwarden` command (cli.js's shebang): Node starts without it and the sinks read it when
//    they connect (extra-ca.ts). Run here as the kernel runs the shebang: /usr/bin/env with the rest
//    of cli.js's first line as one argument, then the script.
// Without the variable, both refuse, retryably and saying why, and nothing reaches the servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { needsTools } from './helpers/env.js';
import { ROOT } from './helpers/paths.js';

interface Outcome {
  nodeLoadedCa: boolean;
  webhook: string;
  email: string;
}

test('webhook and e-mail over TLS: trusted through NODE_EXTRA_CA_CERTS, started as `node cli.js` or as the `portwarden` command; refused without it', async (t) => {
  if (!needsTools(t, 'openssl')) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-https-`);
  const posts: string[] = [];
  const mails: string[] = [];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const key = readFileSync(`${dir}/key.pem`);
  const cert = readFileSync(`${dir}/cert.pem`);
  const https = createServer({ key, cert }, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      posts.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
      res.end('ok');
    });
  });
  const smtp = new SMTPServer({
    secure: true,
    key,
    cert,
    authOptional: true,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString()));
      stream.on('end', () => {
        mails.push(raw);
        callback();
      });
    },
  });
  smtp.on('error', () => undefined); // a client that refuses the certificate closes mid-handshake
  try {
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(https.address() as AddressInfo).port}/hook`;
    const smtpPort = (smtp.server.address() as AddressInfo).port;
    const batch = { id: 'msg_tls', createdAt: new Date().toISOString(), attempts: 0, events: [{ event: 'opened', at: new Date().toISOString(), host: 'h', finding: { id: 'f-1', kind: 'forbidden-listener', severity: 'high', proto: 'tcp', port: 2001, address: '0.0.0.0', rule: null, processes: [], message: 'm', remedy: 'r' } }] };
    writeFileSync(`${dir}/send.mjs`, [
      `import { postOnce } from '${ROOT}dist/agent/alerts/sinks/webhook.js';`,
      `import { emailSender } from '${ROOT}dist/agent/alerts/sinks/email.js';`,
      `const why = (err) => JSON.stringify({ message: err.message, retryable: err.retryable });`,
      `const webhook = await postOnce(${JSON.stringify(url)}, { 'content-type': 'application/json' }, '{"n":1}', 5000).then(() => 'delivered', why);`,
      `const mail = emailSender({ name: 'mail', host: '127.0.0.1', port: ${smtpPort}, tls: 'implicit', from: 'a@b.c', to: ['d@e.f'], timeoutMs: 5000 });`,
      `const email = await mail.send(${JSON.stringify(batch)}).then(() => 'sent', why);`,
      `console.log(JSON.stringify({ nodeLoadedCa: process.env.NODE_EXTRA_CA_CERTS !== undefined, webhook, email }));`,
    ].join('\n'));
    const shebang = /^#!\/usr\/bin\/env (.*)$/.exec(readFileSync(`${ROOT}dist/agent/cli.js`, 'utf8').split('\n')[0]!);
    assert.ok(shebang, 'cli.js starts with a #!/usr/bin/env line');
    // Not spawnSync: this process serves the receivers meanwhile.
    const send = (how: 'node' | 'command', env: NodeJS.ProcessEnv) =>
      new Promise<Outcome>((resolve, reject) => {
        const [cmd, args] = how === 'node' ? [process.execPath, [`${dir}/send.mjs`]] : ['/usr/bin/env', [shebang[1]!, `${dir}/send.mjs`]];
        const child = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env } });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('close', () => {
          try {
            resolve(JSON.parse(out) as Outcome);
          } catch {
            reject(new Error(`${how}: ${out}${err}`));
          }
        });
      });
    const trusted = { NODE_EXTRA_CA_CERTS: `${dir}/cert.pem` };
    assert.deepEqual(await send('node', trusted), { nodeLoadedCa: true, webhook: 'delivered', email: 'sent' });
    assert.deepEqual(await send('command', trusted), { nodeLoadedCa: false, webhook: 'delivered', email: 'sent' }, 'Node started without the file, the sinks read it');
    assert.deepEqual(posts, ['POST /hook application/json {"n":1}', 'POST /hook application/json {"n":1}']);
    assert.equal(mails.length, 2);
    assert.match(mails[1]!, /Message-ID: <msg_tls@portwarden>/i);
    for (const how of ['node', 'command'] as const) {
      const refused = await send(how, {});
      const webhook = JSON.parse(refused.webhook) as { message: string; retryable: boolean };
      const email = JSON.parse(refused.email) as { message: string; retryable: boolean };
      assert.match(webhook.message, /^POST https:\/\/127\.0\.0\.1:\d+\/hook: .*self[- ]signed certificate/, how);
      assert.match(email.message, /^SMTP 127\.0\.0\.1:\d+: .*self[- ]signed certificate/, how);
      assert.equal(webhook.retryable && email.retryable, true, how);
    }
    const missing = await send('command', { NODE_EXTRA_CA_CERTS: `${dir}/nope.pem` });
    assert.match(missing.webhook, /cannot read NODE_EXTRA_CA_CERTS file .*nope\.pem: ENOENT/);
    assert.match(missing.email, /cannot read NODE_EXTRA_CA_CERTS file .*nope\.pem: ENOENT/);
    assert.equal(posts.length, 2, 'nothing reached the receiver without trust');
    assert.equal(mails.length, 2, 'nothing reached the SMTP server without trust');
  } finally {
    https.close();
    await new Promise<void>((r) => smtp.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
