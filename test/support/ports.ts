// Ports for a test to give a process it starts (a proxy's admin port, a control-plane port).
// A port found by binding port 0 and released comes from the kernel's ephemeral range, which it
// also hands to outgoing connections: on a busy CI machine one of them takes the port before
// the process binds it (EADDRINUSE, seen in CI). These ports come from below that range instead,
// are checked free by binding them, and are not handed out twice by one test run.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Where the kernel's ephemeral range starts (/proc/sys/net/ipv4/ip_local_port_range), 32768 when unknown. */
function ephemeralStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

const RANGE_END = ephemeralStart();
/** Above the well-known ports and the control plane's defaults used by hack/cluster (6443, 2379, 10257…). */
const RANGE_START = Math.min(12_000, RANGE_END - 1_000);
const handedOut = new Set<number>();

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port below the ephemeral range that nothing listens on now, on `host` (127.0.0.1 by default). */
export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = RANGE_START + Math.floor(Math.random() * (RANGE_END - RANGE_START));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no unused port found in ${RANGE_START}-${RANGE_END - 1} after 200 tries`);
}

/** `n` distinct unused ports. */
export async function unusedPorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await unusedPort(host));
  return ports;
}
