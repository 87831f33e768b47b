// The upstream layer's public surface: what the HTTP forwarder and the TCP proxy import.

export { ClusterManager, resolveAddresses, type ClusterManagerOptions } from './cluster-manager.js';
export type { Lease, LeaseContext, LeaseFailure, LeaseOutcome, RetryPermit, UpstreamError } from './lease.js';
export { connectTcp, tcpConnectOptions, ConnectTimeoutError, type TcpConnectOptions } from './tcp.js';
export { classifyUpstreamError } from './errors.js';
