// Package metricsflags holds --metrics_addr, where cmd/stream and
// cmd/archive serve their Prometheus metrics, and the server behind it.
package metricsflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Register defines --metrics_addr on fs, defaulting to def (a loopback
// address: metrics are not for everyone to read).
func Register(fs *flag.FlagSet, def string) *string {
	return fs.String("metrics_addr", def, "Serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks one; empty: not served).")
}

// NewRegistry returns a registry holding the Go runtime's and the
// process's collectors and cs.
func NewRegistry(cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(cs...)
	return reg
}

// Serve serves reg at http://addr/metrics until ctx ends. It fails at
// once, naming the flag, if addr cannot be listened on; an empty addr
// serves nothing. It returns the address it listens on (port 0 resolved).
func Serve(ctx context.Context, command, addr string, reg *prometheus.Registry) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--metrics_addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error(command+": metrics server", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr().String(), nil
}
