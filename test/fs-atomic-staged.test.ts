// stageFiles/commitStaged (agent/fs-atomic.ts), how apply writes a backup: every file written and
// fsync'd under a temp name first, nothing in place until the commit, no temp file left behind on
// any failure, and a symlink at a target replaced, never followed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { commitStaged, FsError, stageFiles } from '../agent/fs-atomic.js';

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(`${tmpdir()}/pw-staged-`);
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  'staged files appear only at the commit, whole, with their mode, and no temp file stays',
  withDir(async (dir) => {
    mkdirSync(`${dir}/b`);
    const big = 'x'.repeat(3_000_000);
    const staged = await stageFiles([
      { path: `${dir}/b/full.nft`, data: big, mode: 0o600 },
      { path: `${dir}/b/meta.json`, data: '{"id":"1"}\n', mode: 0o600 },
      { path: `${dir}/pending.json`, data: new Uint8Array([123, 125]), mode: 0o640 },
    ]);
    assert.deepEqual(readdirSync(`${dir}/b`).filter((n) => !n.endsWith('.tmp')), [], 'nothing in place before the commit');
    assert.deepEqual(staged.files.map((f) => f.path), [`${dir}/b/full.nft`, `${dir}/b/meta.json`, `${dir}/pending.json`], 'committed in the order given');
    commitStaged(staged);
    assert.equal(readFileSync(`${dir}/b/full.nft`, 'utf8'), big);
    assert.equal(readFileSync(`${dir}/b/meta.json`, 'utf8'), '{"id":"1"}\n');
    assert.equal(readFileSync(`${dir}/pending.json`, 'utf8'), '{}');
    assert.equal(statSync(`${dir}/b/meta.json`).mode & 0o777, 0o600);
    assert.equal(statSync(`${dir}/pending.json`).mode & 0o777, 0o640);
    assert.deepEqual([...readdirSync(dir), ...readdirSync(`${dir}/b`)].filter((n) => n.endsWith('.tmp')), []);
  }),
);

test(
  'a file that cannot be staged: FsError naming it, and the temp files already written are removed',
  withDir(async (dir) => {
    mkdirSync(`${dir}/b`);
    await assert.rejects(
      stageFiles([
        { path: `${dir}/b/full.nft`, data: 'a', mode: 0o600 },
        { path: `${dir}/missing/meta.json`, data: 'b', mode: 0o600 },
      ]),
      (err: unknown) => err instanceof FsError && err.message === `${dir}/missing/meta.json: no such file or directory`,
    );
    assert.deepEqual(readdirSync(`${dir}/b`), []);
  }),
);

test(
  'a rename that fails leaves the files before it in place and removes the temp files after it',
  withDir(async (dir) => {
    mkdirSync(`${dir}/b`);
    mkdirSync(`${dir}/b/meta.json`); // a directory where a file goes: rename refuses
    const staged = await stageFiles([
      { path: `${dir}/b/full.nft`, data: 'a', mode: 0o600 },
      { path: `${dir}/b/meta.json`, data: 'b', mode: 0o600 },
      { path: `${dir}/b/ours.nft`, data: 'c', mode: 0o600 },
    ]);
    assert.throws(() => commitStaged(staged), (err: unknown) => err instanceof FsError && err.message.startsWith(`${dir}/b/meta.json: `));
    assert.deepEqual(readdirSync(`${dir}/b`).sort(), ['full.nft', 'meta.json']);
  }),
);

test(
  'a symlink at a target is replaced by the file, and what it pointed to is untouched',
  withDir(async (dir) => {
    writeFileSync(`${dir}/victim`, 'keep');
    symlinkSync(`${dir}/victim`, `${dir}/pending.json`);
    commitStaged(await stageFiles([{ path: `${dir}/pending.json`, data: 'new', mode: 0o600 }]));
    assert.equal(readFileSync(`${dir}/victim`, 'utf8'), 'keep');
    assert.ok(lstatSync(`${dir}/pending.json`).isFile());
    assert.equal(readFileSync(`${dir}/pending.json`, 'utf8'), 'new');
  }),
);
