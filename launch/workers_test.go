package launch

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPoolPort(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "50000": 50000, "localhost:50000": 50000, "127.0.0.1:7": 7} {
		if got, err := poolPort(in); err != nil || got != want {
			t.Errorf("poolPort(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0.0.0.0:50000", "example.com:1", ":50000", "x", "70000", "localhost:-1"} {
		if _, err := poolPort(in); err == nil || !strings.Contains(err.Error(), "worker pool") {
			t.Errorf("poolPort(%q): err %v, want one naming the worker pool", in, err)
		}
	}
}

// The pool serves on the address it reports until its context ends.
func TestServeWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- ServeWorkers(ctx, "0", func(a string) { addrs <- a }) }()
	addr := <-addrs
	if !strings.HasPrefix(addr, "localhost:") {
		t.Errorf("pool address %q, want localhost:PORT", addr)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("the pool does not accept connections at %s: %v", addr, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the pool still listens at %s after its context ended", addr)
	}
}
