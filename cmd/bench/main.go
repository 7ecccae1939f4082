// Command bench measures lumen against baselines run in the same process on
// the same data, and prints a table. Figures are ratios to the baseline,
// because the machine is noisy.
//
//	go run ./cmd/bench batch --events=10000000     # the batch layer against a goavro baseline
//	go run ./cmd/bench incremental                  # the batch after one new day: from rollups vs --full
//	go run ./cmd/bench cassandra --rate=5000        # throttled Cassandra writes, uncapped vs capped
//	go run ./cmd/bench s3                           # 144,000 small objects vs a sequential reader
//	go run ./cmd/bench stream --kafka=localhost:9092 # speed layer: backlog events/s, latency at 5,000 events/s
//	go run ./cmd/bench serve --cassandra=localhost:9042 # the query server: p50/p99 at 200 requests/s, then the highest rate with p99 < 100 ms
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"

	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
)

const usage = `usage: bench batch|incremental|cassandra|s3|stream|serve [flags]   (run "bench NAME -h" for flags)`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	// Beam's own flags (--runner etc.) are not used; prism and direct are
	// called directly. Beam still needs initialising for its workers.
	if cmd == "--version" || cmd == "-version" {
		fmt.Println(buildinfo.String("bench"))
		return
	}
	os.Args = os.Args[:1]
	flag.Parse()
	beamlog.LogLevel = "warn"
	beam.Init()

	var err error
	switch cmd {
	case "batch":
		err = benchBatch(context.Background(), args)
	case "incremental":
		err = benchIncremental(context.Background(), args)
	case "cassandra":
		err = benchCassandra(context.Background(), args)
	case "s3":
		err = benchS3(context.Background(), args)
	case "stream":
		err = benchStream(context.Background(), args)
	case "serve":
		err = benchServe(context.Background(), args)
	case "s3-server": // a child of "s3"
		err = serveS3(args)
	default:
		err = fmt.Errorf("unknown benchmark %q\n%s", cmd, usage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return func() {}
	}
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}
