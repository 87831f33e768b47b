// portway-lb gives LoadBalancer Services of the local cluster an address, as a cloud's load
// balancer controller (or cloud-provider-kind) would: it sets status.loadBalancer.ingress[0].ip
// from a pool and puts that address on the node bridge, where kube-proxy serves it (including
// externalTrafficPolicy: Local, whose health-check node port kube-proxy answers itself).
//
// Level-triggered: every change to any Service recomputes the whole assignment from the cache,
// then makes the bridge's addresses and the Services' status match it. An address already in a
// Service's status (or asked for in spec.loadBalancerIP) is kept while it is in the pool and
// not taken by an older Service. Services with a spec.loadBalancerClass are someone else's.
//
// Why not MetalLB: see hack/cluster/README.md ("LoadBalancer addresses").
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

type allocator struct {
	client kubernetes.Interface
	lister listersv1.ServiceLister
	bridge string
	pool   netip.Prefix
	first  netip.Addr // lowest address handed out
	last   netip.Addr // highest address handed out
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	bridge := flag.String("bridge", "pw-node", "interface that holds the LoadBalancer addresses")
	poolFlag := flag.String("pool", "", "address pool, an IPv4 /24 or smaller (e.g. 10.213.2.0/24)")
	flag.String("state-dir", "", "unused; names the cluster's state directory in the command line (down.sh checks it)")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	pool, err := netip.ParsePrefix(*poolFlag)
	if err != nil || !pool.Addr().Is4() || pool.Bits() > 30 {
		log.Fatalf("--pool: want an IPv4 prefix of at most /30, got %q", *poolFlag)
	}
	pool = pool.Masked()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.UserAgent = "portway-lb"
	client := kubernetes.NewForConfigOrDie(cfg)

	// Network and broadcast addresses are left out; .1 too (a gateway by habit).
	first := pool.Addr().Next().Next()
	last := lastAddr(pool).Prev()
	a := &allocator{client: client, bridge: *bridge, pool: pool, first: first, last: last}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactory(client, 5*time.Minute)
	inf := factory.Core().V1().Services()
	a.lister = inf.Lister()
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, n any) { poke(n) },
	}); err != nil {
		log.Fatalf("informer: %v", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		log.Fatalf("services cache did not sync")
	}
	log.Printf("serving LoadBalancer addresses %s-%s on %s", first, last, *bridge)
	retry := time.NewTimer(time.Hour)
	for {
		if err := a.sync(ctx); err != nil {
			log.Printf("sync: %v (retrying in 2s)", err)
			retry.Reset(2 * time.Second)
		}
		select {
		case <-ctx.Done():
			log.Printf("stopping; addresses stay until down.sh removes %s", *bridge)
			return
		case <-kick:
		case <-retry.C:
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (a *allocator) usable(ip netip.Addr) bool {
	return a.pool.Contains(ip) && ip.Compare(a.first) >= 0 && ip.Compare(a.last) <= 0
}

func ours(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.LoadBalancerClass == nil
}

func key(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

// sync computes the assignment and applies it to the bridge and to every Service's status.
func (a *allocator) sync(ctx context.Context) error {
	all, err := a.lister.List(labels.Everything())
	if err != nil {
		return err
	}
	var lbs []*corev1.Service
	for _, s := range all {
		if ours(s) && s.DeletionTimestamp == nil {
			lbs = append(lbs, s)
		}
	}
	// Oldest first: on a conflict the older Service keeps its address.
	sort.Slice(lbs, func(i, j int) bool {
		ti, tj := lbs[i].CreationTimestamp, lbs[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return key(lbs[i]) < key(lbs[j])
	})
	taken := map[netip.Addr]string{}
	want := map[string]netip.Addr{}
	for _, s := range lbs { // keep what is already assigned or asked for
		for _, c := range []string{currentIP(s), s.Spec.LoadBalancerIP} {
			ip, err := netip.ParseAddr(c)
			if err != nil || !a.usable(ip) || taken[ip] != "" {
				continue
			}
			taken[ip], want[key(s)] = key(s), ip
			break
		}
	}
	next := a.first
	for _, s := range lbs {
		if _, ok := want[key(s)]; ok {
			continue
		}
		for next.Compare(a.last) <= 0 && taken[next] != "" {
			next = next.Next()
		}
		if next.Compare(a.last) > 0 {
			log.Printf("pool %s is exhausted: %s stays pending", a.pool, key(s))
			continue
		}
		taken[next], want[key(s)] = key(s), next
	}
	if err := a.syncAddresses(taken); err != nil {
		return err
	}
	var errs []string
	for _, s := range all {
		ip, has := want[key(s)]
		cur := currentIP(s)
		switch {
		case has && cur != ip.String():
			errs = appendErr(errs, a.setStatus(ctx, s, []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)}}))
			if len(errs) == 0 {
				log.Printf("%s: LoadBalancer address %s", key(s), ip)
			}
		case !has && cur != "" && !ours(s):
			// No longer a LoadBalancer of ours (type or class changed): clear what we wrote.
			if c, err := netip.ParseAddr(cur); err == nil && a.pool.Contains(c) {
				errs = appendErr(errs, a.setStatus(ctx, s, nil))
				log.Printf("%s: released %s", key(s), cur)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func appendErr(errs []string, err error) []string {
	if err != nil {
		return append(errs, err.Error())
	}
	return errs
}

func ptr[T any](v T) *T { return &v }

func currentIP(s *corev1.Service) string {
	if len(s.Status.LoadBalancer.Ingress) > 0 {
		return s.Status.LoadBalancer.Ingress[0].IP
	}
	return ""
}

func (a *allocator) setStatus(ctx context.Context, s *corev1.Service, ingress []corev1.LoadBalancerIngress) error {
	c := s.DeepCopy()
	c.Status.LoadBalancer.Ingress = ingress
	_, err := a.client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, c, metav1.UpdateOptions{FieldManager: "portway-lb"})
	if err != nil {
		return fmt.Errorf("%s: status: %w", key(s), err)
	}
	return nil
}

// syncAddresses makes the pool addresses on the bridge exactly the assigned ones.
func (a *allocator) syncAddresses(taken map[netip.Addr]string) error {
	out, err := exec.Command("ip", "-j", "-4", "addr", "show", "dev", a.bridge).Output()
	if err != nil {
		return fmt.Errorf("ip addr show dev %s: %w", a.bridge, err)
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return fmt.Errorf("ip -j addr: %w", err)
	}
	have := map[netip.Addr]bool{}
	for _, l := range links {
		for _, ai := range l.AddrInfo {
			if ip, err := netip.ParseAddr(ai.Local); err == nil && a.pool.Contains(ip) && ai.PrefixLen == 32 {
				have[ip] = true
			}
		}
	}
	for ip := range have {
		if taken[ip] == "" {
			if err := run("ip", "addr", "del", ip.String()+"/32", "dev", a.bridge); err != nil {
				return err
			}
		}
	}
	for ip := range taken {
		if !have[ip] {
			if err := run("ip", "addr", "add", ip.String()+"/32", "dev", a.bridge); err != nil {
				return err
			}
		}
	}
	return nil
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

