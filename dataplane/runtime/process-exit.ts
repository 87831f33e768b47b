// The end of a proxy process. When the drain window ends the process exits, whatever is
// still open: an upstream keep-alive socket, a mirror or a request still in flight, a timer,
// a watcher. Closing politely gets a short grace (the access log flushed, connections reset,
// pools told to close), then process.exit: a Kubernetes pod must be gone before its
// terminationGracePeriodSeconds, and a caller that only set process.exitCode left the
// process running for as long as any handle lived (10 s and more after the window).

/** How long closing may take after the drain window before the process exits anyway. */
export const CLOSE_GRACE_MS = 1_000;

/** Runs `close` for at most CLOSE_GRACE_MS, logs what is still open, and exits with `code`. */
export async function exitAfterClosing(close: () => Promise<unknown>, log: (line: string) => void, code = 0): Promise<never> {
  let timer: NodeJS.Timeout | undefined;
  const closed = close().then(
    () => true,
    (err: unknown) => {
      log(`error: closing: ${(err as Error).message ?? err}`);
      return true;
    },
  );
  const cutShort = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS)));
  const inTime = await Promise.race([closed, cutShort]);
  clearTimeout(timer);
  const open = describeOpenResources();
  log(`drain over: exiting${inTime ? '' : ` (closing not finished after ${CLOSE_GRACE_MS} ms)`}${open ? `; still open: ${open}` : ''}`);
  process.exit(code);
}

/** "TCPSocketWrap×2, Timeout×1": what would have kept the process alive (stdio pipes left out). */
function describeOpenResources(): string {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (r !== 'PipeWrap' && r !== 'TTYWrap') counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([r, n]) => `${r}×${n}`).join(', ');
}
