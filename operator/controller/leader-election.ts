// Leader election on a coordination.k8s.io Lease, as client-go does it: acquire when the
// lease is free or expired, renew every retry period, step down when renewals fail past the
// renew deadline. Optimistic concurrency (resourceVersion) settles races between replicas.

import type { KubeConnection } from '../../kube/connection.js';
import { KubeApiError, kubeRequest, objectPath } from '../../kube/kube-request.js';

export interface LeaderElectionOptions {
  connection: KubeConnection;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number; // 15 s
  renewDeadlineMs?: number; // 10 s
  retryPeriodMs?: number; // 2 s
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log?: (line: string) => void;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

function microTime(d: Date): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: LeaderElectionOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  /** Stops; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.leading) {
      try {
        const lease = await this.get();
        if (lease?.spec.holderIdentity === this.o.identity) {
          lease.spec.holderIdentity = '';
          lease.spec.leaseDurationSeconds = 1;
          await this.put(lease);
        }
      } catch {
        // the lease will expire by itself
      }
      this.setLeading(false);
    }
  }

  private get path(): string {
    return objectPath('coordination.k8s.io/v1', 'leases', this.o.namespace, this.o.name);
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return await kubeRequest<Lease>(this.o.connection, { method: 'GET', path: this.path });
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw err;
    }
  }

  private put(lease: Lease): Promise<Lease> {
    return kubeRequest<Lease>(this.o.connection, { method: 'PUT', path: this.path, body: lease });
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const duration = this.o.leaseDurationMs ?? 15_000;
    try {
      const now = new Date();
      const lease = await this.get();
      const seconds = Math.round(duration / 1000);
      if (!lease) {
        await kubeRequest(this.o.connection, {
          method: 'POST',
          path: objectPath('coordination.k8s.io/v1', 'leases', this.o.namespace),
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: { holderIdentity: this.o.identity, leaseDurationSeconds: seconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
          },
        });
        this.renewed();
      } else {
        const holder = lease.spec.holderIdentity;
        const renewedAt = lease.spec.renewTime ? Date.parse(lease.spec.renewTime) : 0;
        const expired = !holder || renewedAt + (lease.spec.leaseDurationSeconds ?? seconds) * 1000 < now.getTime();
        if (holder === this.o.identity) {
          lease.spec.renewTime = microTime(now);
          lease.spec.leaseDurationSeconds = seconds;
          await this.put(lease);
          this.renewed();
        } else if (expired) {
          lease.spec = {
            holderIdentity: this.o.identity,
            leaseDurationSeconds: seconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1,
          };
          await this.put(lease);
          this.renewed();
        } else if (this.leading) {
          this.setLeading(false); // someone else holds it now
        }
      }
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 409)) this.log(`leader election: ${(err as Error).message}`);
    }
    if (this.leading && Date.now() - this.lastRenew > (this.o.renewDeadlineMs ?? 10_000)) this.setLeading(false);
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.tick(), this.o.retryPeriodMs ?? 2_000);
      this.timer.unref();
    }
  }

  private renewed(): void {
    this.lastRenew = Date.now();
    this.setLeading(true);
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.log(leading ? `leader election: ${this.o.identity} is the leader` : `leader election: ${this.o.identity} stopped leading`);
    if (leading) this.o.onStartedLeading();
    else this.o.onStoppedLeading();
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)))(line);
  }
}
