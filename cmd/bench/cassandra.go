package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/lumenhq/lumen/io/cassandraio"
)

// benchCassandra writes rows through cassandraio's throttled writer,
// uncapped and capped, and prints rows/s and the peak number of writes in
// flight.
func benchCassandra(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench cassandra", flag.ContinueOnError)
	addr := fs.String("cassandra", os.Getenv("LUMEN_TEST_CASSANDRA"), "host:port (default $LUMEN_TEST_CASSANDRA)")
	rows := fs.Int("rows", 200_000, "Rows to write uncapped.")
	rate := fs.Float64("rate", 5000, "The capped run's rate, rows/s.")
	cappedRows := fs.Int("capped_rows", 50_000, "Rows to write capped.")
	inFlight := fs.Int("in_flight", 32, "Max writes in flight.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("--cassandra or LUMEN_TEST_CASSANDRA is required")
	}
	type result struct {
		name  string
		rows  int
		took  time.Duration
		stats cassandraio.Stats
	}
	var results []result
	run := func(name, params string, n int) error {
		ks := fmt.Sprintf("lumen_bench_%d", time.Now().UnixNano()%1e9)
		cfg, err := cassandraio.ParseURL(fmt.Sprintf("cassandra://%s/%s?consistency=ONE&in_flight=%d&%s", *addr, ks, *inFlight, params))
		if err != nil {
			return err
		}
		c, err := cassandraio.Connect(ctx, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.EnsureSchema(ctx); err != nil {
			return err
		}
		defer c.Session().Query("DROP KEYSPACE " + ks).Exec()
		if err := c.Session().Query("CREATE TABLE " + ks + ".rows (p int, c int, v blob, PRIMARY KEY ((p), c))").Exec(); err != nil {
			return err
		}
		w := c.NewWriter()
		stmt := "INSERT INTO " + ks + ".rows (p, c, v) VALUES (?, ?, ?)"
		v := bytes.Repeat([]byte("x"), 32)
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := w.Write(ctx, cassandraio.Mutation{Stmt: stmt, Args: []any{i % 1000, i, v}, Partition: strconv.Itoa(i % 1000), Bytes: 48}); err != nil {
				return err
			}
		}
		if err := w.Flush(ctx); err != nil {
			return err
		}
		results = append(results, result{name, n, time.Since(start), c.Stats()})
		fmt.Fprintf(os.Stderr, "  %s: %d rows in %v\n", name, n, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := run("uncapped (rate=0)", "", *rows); err != nil {
		return err
	}
	if err := run(fmt.Sprintf("capped (rate=%g)", *rate), fmt.Sprintf("rate=%g", *rate), *cappedRows); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\nwrite mode\t rows\t seconds\t rows/s\t peak in flight\t retries\t throttle wait s\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t %d\t %.2f\t %.0f\t %d\t %d\t %.2f\t\n", r.name, r.rows, r.took.Seconds(), float64(r.rows)/r.took.Seconds(),
			r.stats.PeakInFlight, r.stats.Retries, time.Duration(r.stats.ThrottleWait).Seconds())
	}
	return tw.Flush()
}
