// The webhook and Alertmanager sinks POST with Node's http client (not fetch): over TLS to a real
// HTTPS receiver on 127.0.0.1 whose certificate the process trusts (NODE_EXTRA_CA_CERTS), and
// refused, retryably and saying why, by a process that does not trust it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { needsTools } from './helpers/env.js';
import { ROOT } from './helpers/paths.js';

test('webhook over https: delivered when the receiver is trusted, a retryable certificate error when not', async (t) => {
  if (!needsTools(t, 'openssl')) return;
  const dir = mkdtempSync(`${tmpdir()}/pw-https-`);
  const bodies: string[] = [];
  const server = createServer({}, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      bodies.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`);
      res.end('ok');
    });
  });
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    server.setSecureContext({ key: readFileSync(`${dir}/key.pem`), cert: readFileSync(`${dir}/cert.pem`) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    // A child process: NODE_EXTRA_CA_CERTS is read when node starts.
    writeFileSync(`${dir}/post.mjs`, [
      `import { postOnce } from '${ROOT}dist/agent/alerts/sinks/webhook.js';`,
      `try { await postOnce(${JSON.stringify(url)}, { 'content-type': 'application/json' }, '{"n":1}', 5000); console.log('delivered'); }`,
      `catch (err) { console.log(JSON.stringify({ message: err.message, retryable: err.retryable })); }`,
    ].join('\n'));
    // Not spawnSync: this process serves the receiver meanwhile.
    const post = (env: NodeJS.ProcessEnv) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [`${dir}/post.mjs`], { env: { PATH: process.env.PATH, ...env } });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', () => resolve(out.trim()));
      });
    assert.equal(await post({ NODE_EXTRA_CA_CERTS: `${dir}/cert.pem` }), 'delivered');
    assert.deepEqual(bodies, ['POST /hook application/json {"n":1}']);
    const refused = JSON.parse(await post({})) as { message: string; retryable: boolean };
    assert.match(refused.message, /^POST https:\/\/127\.0\.0\.1:\d+\/hook: .*self[- ]signed certificate/);
    assert.equal(refused.retryable, true);
    assert.equal(bodies.length, 1, 'nothing reached the receiver without trust');
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
