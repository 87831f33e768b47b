// List and watch through @kubernetes/client-node, for programs that load it anyway (the
// operator); the proxy uses the lighter kube/list-watch.ts client.

import { KubernetesObjectApi, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { KubeStatusError, type KubeObject, type ListOptions, type ListPage, type ListWatchClient, type WatchParams, type WatchPhase } from './list-watch.js';

export class ClientNodeListWatch implements ListWatchClient {
  constructor(private readonly kubeConfig: KubeConfig) {}

  async list(_path: string, options: ListOptions): Promise<ListPage> {
    const api = KubernetesObjectApi.makeApiClient(this.kubeConfig);
    const { apiVersion, kind, namespace } = options.target;
    const page = await api.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, options.labelSelector, options.limit, options.continueToken);
    return { items: page.items as KubeObject[], resourceVersion: page.metadata?.resourceVersion ?? '', continueToken: page.metadata?._continue || undefined };
  }

  watch(path: string, params: WatchParams, onEvent: (phase: WatchPhase, obj: KubeObject) => void, onStarted: (abort: () => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const watch = new Watch(this.kubeConfig);
      // client-node aborts a watch that is silent this long: the watchdog for stuck watches.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = params.idleMs;
      let failed: unknown;
      let abort: AbortController | undefined;
      watch
        .watch(
          path,
          { resourceVersion: params.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: params.timeoutSeconds, labelSelector: params.labelSelector },
          (phase, obj: KubernetesObject & { code?: number; message?: string }) => {
            if (failed) return;
            if (phase === 'ERROR') {
              failed = new KubeStatusError(obj?.message ?? 'watch error', Number(obj?.code ?? 500));
              abort?.abort();
              return;
            }
            onEvent(phase as WatchPhase, obj as KubeObject);
          },
          (err) => {
            if (failed) reject(failed);
            else if (err && (err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError') reject(err);
            else resolve();
          },
        )
        .then((controller) => {
          abort = controller;
          onStarted(() => controller.abort());
        }, reject);
    });
  }
}
