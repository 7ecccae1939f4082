// Command gen writes deterministic synthetic lumen traffic in the raw Avro
// layout, with a ground-truth file computed independently of lumen's
// transforms.
//
//	go run ./cmd/gen --out=/tmp/lumen --events=1000000 --days=30
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/gen"
)

var (
	out          = flag.String("out", "", "Root to write raw/<kind>/dt=…/hr=…/ under (required).")
	seed         = flag.Uint64("seed", 1, "Random seed; the same seed gives the same bytes.")
	start        = flag.String("start", "2026-10-01", "First arrival day, YYYY-MM-DD.")
	days         = flag.Int("days", 30, "Number of arrival days.")
	windowDays   = flag.Int("window_days", 30, "Window of the batch run (as_of = last day) the truth is for.")
	events       = flag.Int("events", 1_000_000, "Approximate number of events.")
	apps         = flag.Int("apps", 50, "Number of apps (Zipf popularity).")
	filesPerHour = flag.Int("files_per_hour", 200, "Files per arrival hour over all kinds (200 is production's shape).")
	codec        = flag.String("codec", "snappy", "Block codec: null, deflate or snappy.")
	offline      = flag.Float64("offline_share", 0.05, "Share of devices that go offline and upload hours to days late.")
	skew         = flag.Float64("skew_share", 0.01, "Share of devices whose clocks run ahead.")
	tooOld       = flag.Int("too_old", 500, "Events from before the window that arrive inside it.")
	invalid      = flag.Float64("invalid_share", 0.0005, "Share of damaged records (dead letters).")
	junk         = flag.Bool("junk", false, "Add a zero-byte, a foreign-schema and a truncated file.")
	truth        = flag.String("truth", "", "Ground-truth JSON path; default <out>/truth.json; \"none\" to skip.")
	s3Endpoint   = flag.String("s3_endpoint", "", "S3 endpoint when --out is s3:// (default: $AWS_ENDPOINT_URL_S3, then AWS).")
	s3PathStyle  = flag.String("s3_path_style", "auto", "S3 addressing: auto, true or false.")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	ps, err := s3fs.ParsePathStyle(*s3PathStyle)
	if err != nil {
		return fmt.Errorf("--s3_path_style: %w", err)
	}
	s3fs.Configure(s3fs.Options{Endpoint: *s3Endpoint, PathStyle: ps})
	st, err := time.Parse(time.DateOnly, *start)
	if err != nil {
		return fmt.Errorf("--start: %q is not YYYY-MM-DD", *start)
	}
	c, err := avroio.ParseCodec(*codec)
	if err != nil {
		return fmt.Errorf("--codec: %w", err)
	}
	cfg := gen.Config{
		Seed: *seed, Start: st, Days: *days, WindowDays: *windowDays, Events: *events, Apps: *apps, FilesPerHour: *filesPerHour,
		Codec: c, OfflineShare: *offline, SkewShare: *skew, TooOld: *tooOld, InvalidShare: *invalid, Junk: *junk,
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	t0 := time.Now()
	sum, err := gen.WriteDataset(cfg, *out, *truth != "none")
	if err != nil {
		return err
	}
	fmt.Printf("gen: %d records in %d files (%.1f MiB) under %s in %.1fs; as_of %s\n",
		sum.Records, sum.Files, float64(sum.Bytes)/(1<<20), *out, time.Since(t0).Seconds(), cfg.AsOf().Format(time.DateOnly))
	if sum.Truth != nil {
		path := *truth
		if path == "" {
			path = filepath.Join(*out, "truth.json")
			if strings.Contains(*out, "://") {
				path = "truth.json"
			}
		}
		if strings.Contains(path, "://") {
			return fmt.Errorf("--truth: write it to a local path (got %s)", path)
		}
		if err := sum.Truth.WriteFile(path); err != nil {
			return err
		}
		fmt.Printf("gen: truth for as_of %s over %d days in %s\n", sum.Truth.AsOf, sum.Truth.WindowDays, path)
	}
	return nil
}
