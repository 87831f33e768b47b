// Keeps a file-based credential (Gateway serverCertificate/privateKey/caCertificates/caCrl,
// DestinationRule clientCertificate/…) in the credential store, reloading it when the files
// change: fs.watch on the containing directories for a prompt reload, and polling as the
// fallback (fs.watch is unreliable on some filesystems and misses Kubernetes' symlink swaps
// of mounted Secrets on others). A change is picked up within one poll interval (500 ms).
//
// Reloads are deduplicated by content, so a bad file is rejected (and counted) once, and the
// last good material keeps serving until the files are fixed.

import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CertificateMaterial } from './certificate-material.js';
import { errorText } from './certificate-material.js';
import type { CredentialStore, CredentialUpdate } from './credential-store.js';

export interface CredentialFiles {
  cert?: string;
  key?: string;
  ca?: string;
  crl?: string;
}

export interface CredentialFileWatcherOptions {
  /** Polling period; also the longest a change can go unnoticed. Default 500 ms. */
  pollIntervalMs?: number;
  /** Wait after a filesystem event, so a cert and key written one after the other load together. Default 50 ms. */
  settleMs?: number;
  /** Set false to rely on polling alone. Default true. */
  useFsWatch?: boolean;
}

/** The files named by a "file:<cert>|<key>|<ca>|<crl>" credential key. */
export function filesFromCredentialKey(key: string): CredentialFiles | undefined {
  if (!key.startsWith('file:')) return undefined;
  const [cert, privateKey, ca, crl] = key.slice('file:'.length).split('|');
  const files: CredentialFiles = {};
  if (cert) files.cert = cert;
  if (privateKey) files.key = privateKey;
  if (ca) files.ca = ca;
  if (crl) files.crl = crl;
  return files;
}

export class CredentialFileWatcher {
  private readonly watchers: FSWatcher[] = [];
  private poller: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private lastSeen: string | undefined;
  private running: Promise<CredentialUpdate | undefined> | undefined;
  private again = false;
  private closed = false;

  constructor(
    private readonly store: CredentialStore,
    readonly key: string,
    readonly files: CredentialFiles,
    private readonly options: CredentialFileWatcherOptions = {},
  ) {}

  /** Loads the files once and starts watching. Resolves with the first load's outcome. */
  async start(): Promise<CredentialUpdate | undefined> {
    const first = await this.reload();
    if (this.closed) return first;
    if (this.options.useFsWatch !== false) this.watchDirectories();
    this.poller = setInterval(() => void this.reload(), this.options.pollIntervalMs ?? 500);
    this.poller.unref();
    return first;
  }

  /**
   * Reads the files and pushes them to the store if their content changed since the last
   * read. Resolves with the store's answer, or undefined when nothing changed.
   */
  reload(): Promise<CredentialUpdate | undefined> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.readAndPush().finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        void this.reload();
      }
    });
    return this.running;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
    clearInterval(this.poller);
    clearTimeout(this.settleTimer);
  }

  private async readAndPush(): Promise<CredentialUpdate | undefined> {
    const read = await readCredentialFiles(this.files);
    if (this.closed) return undefined;
    const seen = JSON.stringify(read);
    if (seen === this.lastSeen) return undefined;
    this.lastSeen = seen;
    if ('error' in read) return { accepted: false, rejection: this.store.reject(this.key, read.error) };
    return this.store.update(this.key, read.material);
  }

  private watchDirectories(): void {
    const directories = new Set(Object.values(this.files).map((f: string) => dirname(f)));
    for (const directory of directories) {
      try {
        const watcher = watch(directory, { persistent: false }, () => this.scheduleReload());
        // Polling still runs, so a watcher that breaks (directory removed, inotify limits)
        // only costs promptness.
        watcher.on('error', () => watcher.close());
        this.watchers.push(watcher);
      } catch {
        // Same: polling covers it.
      }
    }
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reload(), this.options.settleMs ?? 50);
    this.settleTimer.unref();
  }
}

async function readCredentialFiles(files: CredentialFiles): Promise<{ material: CertificateMaterial } | { error: string }> {
  const fields: Array<[keyof CertificateMaterial, string | undefined]> = [
    ['certChain', files.cert],
    ['privateKey', files.key],
    ['caCertificates', files.ca],
    ['crl', files.crl],
  ];
  const material: CertificateMaterial = {};
  for (const [field, path] of fields) {
    if (!path) continue;
    try {
      material[field] = await readFile(path, 'utf8');
    } catch (err) {
      return { error: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}` };
    }
  }
  return { material };
}
