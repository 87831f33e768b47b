// Pieces of the standalone YAML the proxy feature tests give `portway proxy --config DIR`:
// the ingress Gateway they all serve, a STATIC ServiceEntry per local backend, and the way
// editors and kubectl-style tools write a file.

import { renameSync, writeFileSync } from 'node:fs';

/** Gateway istio-system/gw: pods labelled istio=ingressgateway, port 80 HTTP for *.example.com. */
export function ingressGatewayYaml(): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
`;
}

/** ServiceEntry default/<name>: `host` port 80 is 127.0.0.1:<port> (STATIC). */
export function localServiceEntryYaml(name: string, host: string, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${port}}]
  endpoints: [{address: 127.0.0.1}]
`;
}

/** Writes a file as editors and kubectl-style tools do: a new file renamed into place. */
export function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}
