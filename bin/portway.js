#!/usr/bin/env node
// Entry point for `npx portway`: the compiled CLI lives in dist/ (built by `npm install`).
import { main } from '../dist/cli/main.js';

// In a container Node.js is PID 1, and the kernel ignores a signal PID 1 has no handler for:
// a SIGTERM during start-up (before `proxy` or `operator` installs its own handler, e.g. while
// the proxy waits for its first sync with an unreachable API server) would be lost and the
// pod would take its whole grace period to stop. Until a command handles the signal, exit as
// the signal's default action would (128 + signal number); once it does, this stays out of
// the way (it runs first and sees the command's listener too).
for (const [signal, number] of [['SIGTERM', 15], ['SIGINT', 2]]) {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(128 + number);
  });
}

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(err instanceof Error ? err.message : err); process.exit(1); },
);
