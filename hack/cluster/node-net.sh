# shellcheck shell=bash
# The real node's network on this machine, shared by node-up.sh and node-down.sh. Source it.
#
# Everything here lives on interfaces these scripts create; nothing is routed off the machine:
#   pw-node  (bridge, no ports)   $NODE_IP/24: the node's InternalIP, the apiserver's advertise
#                                 address, and the LoadBalancer addresses ($LB_NET.x/32)
#   pw-pods  (bridge, CNI)        $POD_CIDR: pods, gateway ${NODE_NET}.1.1
#   pw-client (veth) ↔ netns pw-client: a client outside the node, as the internet is to a
#                                 cloud load balancer: $CLIENT_IP, default route via $CLIENT_GW
#                                 (here kube-proxy sees traffic arrive from elsewhere, so
#                                 externalTrafficPolicy: Local keeps the client's address)
#   routes                        the Service range and the LoadBalancer pool go to pw-node, so
#                                 stray traffic to an unallocated ClusterIP stays here
#   nft table ip portway-node     drops forwarding that does not touch pw-*: turning on
#                                 net.ipv4.ip_forward for pods must not make this machine a router
#
# One real node per machine: kube-proxy's nftables table and the kubelet's ports are
# machine-wide. $NODE_LOCK names the state directory of the node that holds them.

NODE_NET="${PORTWAY_NODE_NET:-10.213}"
[[ "$NODE_NET" =~ ^10\.[0-9]{1,3}$ ]] || die "PORTWAY_NODE_NET must look like 10.N (got $NODE_NET)"
NODE_IP="$NODE_NET.0.1"
POD_CIDR="$NODE_NET.1.0/24"
LB_NET="$NODE_NET.2"           # LoadBalancer pool: $LB_NET.10 .. $LB_NET.250
LB_CIDR="$LB_NET.0/24"
SERVICE_CIDR="10.96.0.0/16"
CLUSTER_DNS_IP="10.96.0.10"
CLIENT_GW="$NODE_NET.3.1"
CLIENT_IP="$NODE_NET.3.2"
CLIENT_NETNS=pw-client
CLIENT_LINK=pw-client
NODE_BRIDGE=pw-node
POD_BRIDGE=pw-pods
NFT_TABLE=portway-node
NODE_NAME="${PORTWAY_NODE_NAME:-portway-node}"
NODE_LOCK=/run/portway-real-node
# Fixed node ports (below the ephemeral range, see REAL-NODE.md).
KUBELET_PORT=10250
KUBELET_HEALTHZ_PORT=10248
KUBE_PROXY_HEALTHZ_PORT=10256
KUBE_PROXY_METRICS_PORT=10249
