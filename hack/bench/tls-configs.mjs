// Configuration the TLS benchmark (tls.mjs) generates: Portway's Istio YAML, the nginx it is
// compared with, and the nginx TLS backend of the passthrough scenario. The two systems under
// test get the same certificates, protocol versions, cipher suites, groups and session
// settings; everything listens on 127.0.0.1.

import { nginxBackendUpstream, nginxHttpBasics, nginxMain, nginxProxyToBackend } from './configs.mjs';

const LOOPBACK = '127.0.0.1';
const b64 = (text) => Buffer.from(text).toString('base64');

/** The host names used: every HTTPS server takes any SNI ("*"); passthrough routes one name. */
export const HOSTS = { https: 'bench.local', passthrough: 'pass.bench.local' };

/**
 * Gateway "bench" (namespace bench) with three servers: 443 HTTPS with the ECDSA certificate,
 * 444 HTTPS with the RSA one (both hosts "*", SIMPLE), 445 TLS PASSTHROUGH for
 * pass.bench.local; the certificates as kubernetes.io/tls Secrets; a VirtualService sending
 * bench.local to the HTTP backend and one routing the passthrough SNI to the TLS backend.
 */
export function portwayTlsYaml({ ecdsa, rsa, backendPort, tlsBackendPort }) {
  const secret = (name, { cert, key }) => `apiVersion: v1
kind: Secret
metadata: {name: ${name}, namespace: bench}
type: kubernetes.io/tls
data:
  tls.crt: ${b64(cert)}
  tls.key: ${b64(key)}`;
  // <name>.bench.local on 127.0.0.1:`port`; the port's name is its protocol in lower case.
  const serviceEntry = (name, number, protocol, port) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: bench}
spec:
  hosts: [${name}.bench.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: ${number}, name: ${protocol.toLowerCase()}, protocol: ${protocol}}]
  endpoints: [{address: ${LOOPBACK}, ports: {${protocol.toLowerCase()}: ${port}}}]`;
  return [
    secret('ecdsa-cert', ecdsa),
    secret('rsa-cert', rsa),
    `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench, namespace: bench}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-ecdsa, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: ecdsa-cert}
  - port: {number: 444, name: https-rsa, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: rsa-cert}
  - port: {number: 445, name: tls-passthrough, protocol: TLS}
    hosts: ["${HOSTS.passthrough}"]
    tls: {mode: PASSTHROUGH}`,
    serviceEntry('backend', 80, 'HTTP', backendPort),
    serviceEntry('tls-backend', 443, 'TLS', tlsBackendPort),
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: bench}
spec:
  hosts: ["${HOSTS.https}"]
  gateways: [bench/bench]
  http:
  - route: [{destination: {host: backend.bench.local, port: {number: 80}}}]`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough, namespace: bench}
spec:
  hosts: ["${HOSTS.passthrough}"]
  gateways: [bench/bench]
  tls:
  - match: [{sniHosts: ["${HOSTS.passthrough}"], port: 445}]
    route: [{destination: {host: tls-backend.bench.local, port: {number: 443}}}]`,
  ].join('\n---\n') + '\n';
}

/**
 * nginx as the equivalent of one Portway proxy: one worker, the same certificates on two
 * HTTPS ports (ALPN h2 + http/1.1 as Portway), TLS 1.2–1.3, Node's default cipher list in
 * Node's order with the server's preference (Portway: honorCipherOrder), OpenSSL's default
 * groups (Node's ecdhCurve "auto"), session tickets (random key, as Portway's) plus a shared
 * session cache, proxying to the same backend as bench.mjs's nginx; `stream` with ssl_preread
 * for passthrough by SNI. `streamModule`: the path of ngx_stream_module.so to load, if dynamic.
 * `http2`: false for an nginx built without it (ALPN then offers http/1.1 only).
 */
export function nginxTlsConf({ prefix, ports, backendPort, tlsBackendPort, certs, ciphers, streamModule, http2 = true }) {
  const tls12 = ciphers.filter((c) => !c.startsWith('TLS_')).join(':');
  const tls13 = ciphers.filter((c) => c.startsWith('TLS_')).join(':');
  const https = (port, { certFile, keyFile }) => `  server {
    listen ${LOOPBACK}:${port} ssl${http2 ? ' http2' : ''};
    ssl_certificate ${certFile};
    ssl_certificate_key ${keyFile};
${nginxProxyToBackend()}
  }`;
  return `${nginxMain({ prefix, generatedBy: 'hack/bench/tls.mjs: nginx as the equivalent of one Portway proxy, with TLS.', loadModule: streamModule })}
http {
${nginxHttpBasics(prefix)}
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ciphers ${tls12};
  ssl_conf_command Ciphersuites ${tls13};
  ssl_prefer_server_ciphers on;
  ssl_ecdh_curve auto;
  ssl_session_tickets on;
  ssl_session_cache shared:SSL:10m;
  ssl_session_timeout 300s;
${nginxBackendUpstream(backendPort)}
${https(ports.ecdsa, certs.ecdsa)}
${https(ports.rsa, certs.rsa)}
}
${streamModule !== null ? `stream {
  map $ssl_preread_server_name $passthrough_upstream {
    ${HOSTS.passthrough} ${LOOPBACK}:${tlsBackendPort};
    default ${LOOPBACK}:1;
  }
  server {
    listen ${LOOPBACK}:${ports.passthrough};
    ssl_preread on;
    proxy_pass $passthrough_upstream;
  }
}
` : ''}`;
}

/** The passthrough scenario's TLS backend: nginx serving one large file (`root`/bulk) over HTTPS. */
export function nginxTlsBackendConf({ prefix, port, root, cert }) {
  return `${nginxMain({ prefix, generatedBy: 'hack/bench/tls.mjs: the TLS backend behind passthrough.', workerConnections: 1024 })}
http {
${nginxHttpBasics(prefix)}
  server {
    listen ${LOOPBACK}:${port} ssl;
    ssl_certificate ${cert.certFile};
    ssl_certificate_key ${cert.keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    output_buffers 2 256k;
    root ${root};
    location = /bulk { default_type application/octet-stream; }
  }
}
`;
}
