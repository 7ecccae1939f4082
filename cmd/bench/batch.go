package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/direct"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/pipelines"
)

func benchBatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench batch", flag.ContinueOnError)
	events := fs.Int("events", 10_000_000, "Events to generate.")
	filesPerHour := fs.Int("files_per_hour", 200, "Files per arrival hour (200: production's small files).")
	codec := fs.String("codec", "snappy", "Block codec of the generated files.")
	dir := fs.String("dir", "", "Dataset directory, reused if it holds the same dataset (default: $TMPDIR/lumen-bench-<events>).")
	runs := fs.String("runners", "prism,direct", "Comma-free list of runners to time the batch on: prism, direct, or both.")
	cpuprofile := fs.String("cpuprofile", "", "Write a CPU profile of the prism run.")
	unitBytes := fs.Int64("unit_bytes", 0, "Work unit target bytes (0: lumen's default).")
	openCost := fs.Int64("open_cost", 0, "Per-file open cost in bytes (0: lumen's default).")
	parallelism := fs.Int("read_parallelism", 0, "Minimum work units (0: lumen's default).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := avroio.ParseCodec(*codec)
	if err != nil {
		return err
	}
	cfg := gen.Config{Seed: 42, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, WindowDays: 30,
		Events: *events, Apps: 50, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 1000, FilesPerHour: *filesPerHour, Codec: c}
	root := *dir
	if root == "" {
		root = filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-%d-%d-%s", *events, *filesPerHour, *codec))
	}
	files, bytes, err := ensureDataset(root, cfg)
	if err != nil {
		return err
	}
	asOf := cfg.AsOf()
	window := aggregate.NewDayWindow(asOf, 30)
	fmt.Printf("dataset: %s, %d files, %.0f MiB, %s codec, GOMAXPROCS=%d\n", root, files, float64(bytes)/(1<<20), *codec, runtime.GOMAXPROCS(0))

	type result struct {
		name    string
		records int64
		took    time.Duration
	}
	var results []result
	add := func(name string, n int64, d time.Duration) {
		results = append(results, result{name, n, d})
		fmt.Fprintf(os.Stderr, "  %-48s %6.2fs  %5.2f M events/s\n", name, d.Seconds(), float64(n)/d.Seconds()/1e6)
	}

	// Baseline: a plain-Go loop, goavro decoding to native maps, then the
	// same map-side aggregation. One goroutine, no Beam.
	list, err := raw.ListWindow(ctx, root, window.First, window.Last, raw.PlanOptions{})
	if err != nil {
		return err
	}
	t0 := time.Now()
	n, err := goavroBaseline(list, window)
	if err != nil {
		return err
	}
	add("baseline: goavro decode + map aggregation (1 goroutine)", n, time.Since(t0))

	// lumen's reader and aggregation without Beam, one goroutine.
	t0 = time.Now()
	n, err = readerOnly(ctx, list, window)
	if err != nil {
		return err
	}
	add("lumen reader + aggregation, no Beam (1 goroutine)", n, time.Since(t0))

	for _, r := range splitList(*runs) {
		store := "sqlite:" + filepath.Join(os.TempDir(), fmt.Sprintf("lumen-bench-%d.db", os.Getpid()))
		// A full run, as a first or a --full run is: everything from raw,
		// rollups written (to a directory of their own, so that the next
		// runner reads raw too and the dataset stays as generated).
		rollups, err := os.MkdirTemp("", "lumen-bench-rollups")
		if err != nil {
			return err
		}
		defer os.RemoveAll(rollups)
		p, s := beam.NewPipelineWithRoot()
		if err := pipelines.BuildBatch(s, pipelines.BatchConfig{Input: root, AsOf: asOf, Store: store, DeadLetterRoot: os.TempDir(),
			RollupRoot: rollups, Full: true,
			Plan: raw.PlanOptions{TargetBytes: *unitBytes, OpenCost: *openCost, Parallelism: *parallelism}}); err != nil {
			return err
		}
		stop := func() {}
		if r == "prism" {
			stop = startProfile(*cpuprofile)
		}
		t0 = time.Now()
		switch r {
		case "prism":
			_, err = prism.Execute(ctx, p)
		case "direct":
			_, err = direct.Execute(ctx, p)
		default:
			err = fmt.Errorf("unknown runner %q", r)
		}
		took := time.Since(t0)
		stop()
		os.Remove(store[len("sqlite:"):])
		os.Remove(store[len("sqlite:"):] + "-wal")
		os.Remove(store[len("sqlite:"):] + "-shm")
		if err != nil {
			return err
		}
		add("lumen batch on "+r+", end to end into SQLite", n, took)
	}

	base := results[0]
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\nwhat\t events\t seconds\t M events/s\t vs baseline\t\n")
	for _, r := range results {
		rate := float64(r.records) / r.took.Seconds()
		fmt.Fprintf(tw, "%s\t %d\t %.2f\t %.2f\t %.2fx\t\n", r.name, r.records, r.took.Seconds(), rate/1e6,
			rate/(float64(base.records)/base.took.Seconds()))
	}
	return tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, part := range filepath.SplitList(s) {
		for _, p := range splitComma(part) {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// ensureDataset generates cfg under root unless a marker says it is there.
func ensureDataset(root string, cfg gen.Config) (files, bytes int64, err error) {
	marker := filepath.Join(root, "bench.json")
	want, _ := json.Marshal(cfg)
	type stamp struct {
		Config       json.RawMessage
		Files, Bytes int64
	}
	if b, err := os.ReadFile(marker); err == nil {
		var st stamp
		if json.Unmarshal(b, &st) == nil && string(st.Config) == string(want) {
			return st.Files, st.Bytes, nil
		}
	}
	os.RemoveAll(root)
	fmt.Fprintf(os.Stderr, "generating %d events into %s ...\n", cfg.Events, root)
	t0 := time.Now()
	sum, err := gen.WriteDataset(cfg, root, false)
	if err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(os.Stderr, "generated %d records in %d files in %.0fs\n", sum.Records, sum.Files, time.Since(t0).Seconds())
	b, _ := json.Marshal(stamp{Config: want, Files: sum.Files, Bytes: sum.Bytes})
	return sum.Files, sum.Bytes, os.WriteFile(marker, b, 0o644)
}

func goavroBaseline(files []raw.FileSplit, w aggregate.DayWindow) (int64, error) {
	p := aggregate.NewPartials(w, aggregate.Hour, 14)
	var n int64
	for _, f := range files {
		fh, err := os.Open(f.Path)
		if err != nil {
			return n, err
		}
		r, err := goavro.NewOCFReader(fh)
		if err != nil {
			fh.Close()
			return n, fmt.Errorf("%s: %w", f.Path, err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				fh.Close()
				return n, err
			}
			e, err := event.FromNative(f.Kind, v)
			if err != nil {
				fh.Close()
				return n, err
			}
			n++
			if event.Validate(&e) == "" {
				p.Add(&e)
			}
		}
		fh.Close()
	}
	return n, nil
}

type partialsSink struct{ p *aggregate.Partials }

func (s partialsSink) Events(evs []event.Event) {
	for i := range evs {
		s.p.Add(&evs[i])
	}
}
func (partialsSink) DeadLetter(deadletter.Record) {}

func readerOnly(ctx context.Context, files []raw.FileSplit, w aggregate.DayWindow) (int64, error) {
	var n int64
	for _, u := range raw.Pack(files, raw.PlanOptions{}) {
		st, err := raw.ReadUnit(ctx, u, raw.ReadOptions{}, partialsSink{aggregate.NewPartials(w, aggregate.Hour, 14)})
		if err != nil {
			return n, err
		}
		n += st.Records
	}
	return n, nil
}
