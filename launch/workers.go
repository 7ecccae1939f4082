package launch

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal/extworker"
)

// ServeWorkers serves a Beam worker pool (the Fn API's external worker
// pool service) on localhost until ctx ends, and calls ready with the
// address jobs name in --environment_config. It is the SDK harness of jobs
// submitted with --environment_type=EXTERNAL: a portable runner (prism,
// Flink) asks the pool to start a worker per job, and the worker runs
// inside this process, as a goroutine, from the DoFns registered in this
// binary. So the pool must be built from the same source as the launcher,
// and it serves job after job until stopped.
//
// addr is "PORT", "localhost:PORT" or "127.0.0.1:PORT"; port 0 picks a
// free one. Beam's pool (extworker) binds localhost only: on a cluster it
// runs beside each task manager, as a sidecar, and nothing else can reach
// it, which matters because a pool runs whatever job asks.
//
// The workers do not receive the job's pipeline options (extworker passes
// none). lumen's DoFns carry what they need in their own serialized fields
// (store URL, S3 endpoint, region and addressing, Kafka brokers and
// topics), and read secrets from this process's environment: the
// Cassandra password from LUMEN_CASSANDRA_PASSWORD, AWS credentials from
// the AWS chain.
func ServeWorkers(ctx context.Context, addr string, ready func(addr string)) error {
	port, err := poolPort(addr)
	if err != nil {
		return err
	}
	srv, err := extworker.StartLoopback(ctx, port)
	if err != nil {
		return fmt.Errorf("launch: worker pool: %w", err)
	}
	if ready != nil {
		ready(srv.EnvironmentConfig(ctx))
	}
	<-ctx.Done()
	return srv.Stop(context.WithoutCancel(ctx))
}

// poolPort parses ServeWorkers' addr.
func poolPort(addr string) (int, error) {
	p := addr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if host != "localhost" && host != "127.0.0.1" {
			return 0, fmt.Errorf("launch: worker pool %q: it listens on localhost only; give PORT or localhost:PORT", addr)
		}
		p = port
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("launch: worker pool %q: want PORT or localhost:PORT", addr)
	}
	return n, nil
}
