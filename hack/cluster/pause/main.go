// pause: the process that holds a pod's namespaces, as Kubernetes' build/pause/linux/pause.c.
// It waits for SIGINT or SIGTERM (then exits 0) and reaps the zombies it inherits as PID 1.
// hack/cluster/build.sh builds it statically into $PORTWAY_CACHE/bin/pause-<recipe>/pause.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var version = "dev" // set by build.sh (-X main.version=...)

func main() {
	for _, a := range os.Args[1:] {
		if a = strings.ToLower(a); a == "-v" || a == "-version" || a == "--version" {
			fmt.Printf("pause.go %s\n", version)
			return
		}
	}
	if os.Getpid() != 1 { // not an error: pause is also used outside infra containers
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", s)
			os.Exit(0)
		}
		for { // signals coalesce: reap every child that has exited
			if pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
