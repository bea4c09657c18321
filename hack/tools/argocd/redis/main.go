// Command redis serves Redis on a loopback address for the Argo CD processes the tests run
// (argocd-repo-server and argocd-application-controller keep their caches in Redis), with
// miniredis, the in-memory Redis that Argo CD's own tests use.
//
// miniredis never expires keys on its own: time only moves when FastForward is called. Without the
// ticker below, the repo-server's revision cache (a branch name → commit, kept a few minutes) would
// never expire and new commits would go unseen.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	s := miniredis.NewMiniRedis()
	if err := s.StartAddr(*addr); err != nil {
		log.Fatalf("starting miniredis on %s: %v", *addr, err)
	}
	fmt.Printf("redis listening on %s\n", s.Addr())

	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case <-ticker.C:
			s.FastForward(time.Second)
		case <-stop:
			s.Close()
			return
		}
	}
}
