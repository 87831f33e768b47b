// File-based credentials: reload on change (with fs.watch, and by polling alone), a bad
// file keeps the last good material.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { CredentialFileWatcher, filesFromCredentialKey } from '../../../dataplane/tls/credential-files.js';
import { CredentialStore } from '../../../dataplane/tls/credential-store.js';
import { serverCert } from '../../support/certs.js';

/** Resolves on the next store event for `key` (accepted change or rejection). */
function nextEvent(store: CredentialStore, key: string): Promise<'change' | 'rejected'> {
  return new Promise((resolve) => {
    const onChange = (k: string) => k === key && done('change');
    const onRejected = (r: { key: string }) => r.key === key && done('rejected');
    const done = (what: 'change' | 'rejected') => {
      store.off('change', onChange);
      store.off('rejected', onRejected);
      resolve(what);
    };
    store.on('change', onChange);
    store.on('rejected', onRejected);
  });
}

/** Replaces a file the way Kubernetes and cert tools do: write aside, rename over. */
function replaceFile(path: string, text: string): void {
  writeFileSync(`${path}.new`, text);
  renameSync(`${path}.new`, path);
}

describe('tls: file credentials', () => {
  let dir: string;
  let store: CredentialStore;
  let watcher: CredentialFileWatcher | undefined;
  let certPath: string;
  let keyPath: string;
  let key: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portway-cred-files-'));
    store = new CredentialStore({ registry: new Registry() });
    certPath = join(dir, 'tls.crt');
    keyPath = join(dir, 'tls.key');
    key = `file:${certPath}|${keyPath}||`;
  });

  afterEach(() => {
    watcher?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('maps a file credential key back to its paths', () => {
    assert.deepEqual(filesFromCredentialKey('file:/c/tls.crt|/c/tls.key|/c/ca.crt|'), { cert: '/c/tls.crt', key: '/c/tls.key', ca: '/c/ca.crt' });
    assert.equal(filesFromCredentialKey('secret:ns/name'), undefined);
  });

  for (const useFsWatch of [true, false]) {
    it(`reloads rotated files and keeps the last good material on a bad file (${useFsWatch ? 'fs.watch' : 'polling only'})`, async () => {
      const first = serverCert({ dnsNames: ['files.example.com'] });
      writeFileSync(certPath, first.chain);
      writeFileSync(keyPath, first.key);
      watcher = new CredentialFileWatcher(store, key, filesFromCredentialKey(key)!, { useFsWatch, pollIntervalMs: 100 });
      const loaded = await watcher.start();
      assert.ok(loaded?.accepted);
      assert.equal(store.get(key)?.material.certChain, first.chain);

      // Rotation: both files replaced.
      const second = serverCert({ dnsNames: ['files.example.com'] });
      let event = nextEvent(store, key);
      replaceFile(keyPath, second.key);
      replaceFile(certPath, second.chain);
      // The watcher may see the key before the certificate (a rejection); wait for the pair.
      while ((await event) !== 'change' || store.get(key)?.material.certChain !== second.chain) event = nextEvent(store, key);
      assert.equal(store.get(key)?.material.privateKey, second.key);

      // A broken certificate file: rejected once, the rotated material keeps serving.
      event = nextEvent(store, key);
      replaceFile(certPath, 'not a certificate');
      assert.equal(await event, 'rejected');
      assert.match(store.lastRejection(key)?.reason ?? '', /no PEM CERTIFICATE block/);
      assert.equal(store.get(key)?.material.certChain, second.chain);

      // A missing file is a rejection too, naming the file.
      event = nextEvent(store, key);
      rmSync(keyPath);
      assert.equal(await event, 'rejected');
      assert.match(store.lastRejection(key)?.reason ?? '', /cannot read .*tls\.key: ENOENT/);
      assert.equal(store.get(key)?.material.certChain, second.chain);
    });
  }
});
