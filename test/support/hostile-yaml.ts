// Config files that hostile or careless input produces (issue 13 items 1 and 2).

/** A VirtualService whose `routes` rules all route through one anchor (issue 13 item 1's repro). */
export function sharedAnchorVirtualService(routes: number, name = 'many'): string {
  let s = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
x: &rt [{destination: {host: a.local}}]
spec:
  hosts: [a.example.com]
  gateways: [gw]
  http:
`;
  for (let i = 0; i < routes; i++) s += `  - {match: [{uri: {prefix: /r${i}}}], route: *rt}\n`;
  return s;
}

/** Billion laughs: nine levels, each an array of nine aliases of the level below. */
export function billionLaughs(): string {
  let s = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i <= 9; i++) s += `  a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(',')}]\n`;
  return s;
}

/** `count` Service documents, one line each (issue 13 item 2's repro used 130,000: the stack overflowed past ~125,000). */
export function manyServices(count: number): string {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`{apiVersion: v1, kind: Service, metadata: {name: s${i}, namespace: bulk}}`);
  return `${parts.join('\n---\n')}\n`;
}
