// Command gen writes deterministic synthetic lumen traffic in the raw Avro
// layout, or sends it to Kafka, with a ground-truth file computed
// independently of lumen's transforms.
//
//	go run ./cmd/gen --out=/tmp/lumen --events=1000000 --days=30
//	go run ./cmd/gen --kafka=localhost:9092 --rate=5000 --live --events=300000 --truth=truth.json
//	go run ./cmd/gen --out=testing/sample --start=2026-11-22 --days=3 --seals_only
//
// A file dataset is sealed (io/raw seals): every arrival hour of every kind
// in [--start, --start+--days) is marked complete, as the archiver marks the
// hours it has committed, so the batch takes its input as whole.
// --seals_only writes just those markers, for a dataset written before
// seals existed (the bundled sample got its markers this way).
//
// In Kafka mode records go out in arrival order at --rate events/s. With
// --live they are re-stamped to the wall clock as they are sent (each
// device's lateness kept), for the speed layer; without it they keep their
// generated times (a replay: the archiver lands them where --out would have,
// and the truth is the same as the files' truth for the same seed).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
	"github.com/lumenhq/lumen/cmd/internal/help"
	"github.com/lumenhq/lumen/cmd/internal/s3flags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/s3fs"
)

// beamFlags are the flags of the imported packages (Beam's): the first
// variable of the package, so it is set before lumen's flags are defined.
var beamFlags = help.Snapshot(flag.CommandLine)

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
	s3Flags      = s3flags.Register(flag.CommandLine)
	kafka        = flag.String("kafka", "", "Kafka brokers (host:port,…): send to Kafka instead of writing --out.")
	topicPrefix  = flag.String("topic_prefix", kafkaio.DefaultTopicPrefix, "Kafka topics are <prefix><kind>.")
	rateLimit    = flag.Float64("rate", 5000, "Kafka mode: events per second (0: as fast as Kafka takes them).")
	live         = flag.Bool("live", false, "Kafka mode: re-stamp records to the wall clock as they are sent.")
	sealsOnly    = flag.Bool("seals_only", false, "Write only the seal markers of every arrival hour in [--start, --start+--days) under --out.")
)

func main() {
	version := buildinfo.Flag(flag.CommandLine)
	h := help.Install(flag.CommandLine, beamFlags, synopsis, groups...)
	flag.Parse()
	buildinfo.ExitIfAsked(version, "gen")
	h.ExitIfBeamAsked()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	if *kafka != "" {
		return runKafka()
	}
	if *out == "" {
		return fmt.Errorf("--out (or --kafka) is required")
	}
	s3o, err := s3Flags.Options()
	if err != nil {
		return err
	}
	s3fs.Configure(s3o)
	c, err := avroio.ParseCodec(*codec)
	if err != nil {
		return fmt.Errorf("--codec: %w", err)
	}
	cfg, err := config(c)
	if err != nil {
		return err
	}
	if *sealsOnly {
		n, err := gen.WriteSeals(*out, cfg.Start, cfg.End())
		if err != nil {
			return err
		}
		fmt.Printf("gen: sealed %d arrival hours (%d kinds) from %s to %s under %s\n", n, len(event.Kinds),
			cfg.Start.Format(time.DateOnly), cfg.AsOf().Format(time.DateOnly), *out)
		return nil
	}
	t0 := time.Now()
	sum, err := gen.WriteDataset(cfg, *out, *truth != "none")
	if err != nil {
		return err
	}
	fmt.Printf("gen: %d records in %d files (%.1f MiB) and %d seals under %s in %.1fs; as_of %s\n",
		sum.Records, sum.Files, float64(sum.Bytes)/(1<<20), sum.Seals, *out, time.Since(t0).Seconds(), cfg.AsOf().Format(time.DateOnly))
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

func config(c avroio.Codec) (gen.Config, error) {
	st, err := time.Parse(time.DateOnly, *start)
	if err != nil {
		return gen.Config{}, fmt.Errorf("--start: %q is not YYYY-MM-DD", *start)
	}
	cfg := gen.Config{
		Seed: *seed, Start: st, Days: *days, WindowDays: *windowDays, Events: *events, Apps: *apps, FilesPerHour: *filesPerHour,
		Codec: c, OfflineShare: *offline, SkewShare: *skew, TooOld: *tooOld, InvalidShare: *invalid, Junk: *junk,
	}
	cfg.EnsureDefaults()
	return cfg, cfg.Validate()
}

// runKafka sends the traffic to Kafka in arrival order, rate-limited.
func runKafka() error {
	cfg, err := config(avroio.CodecNull)
	if err != nil {
		return err
	}
	if *junk {
		return fmt.Errorf("--junk writes damaged files: not in Kafka mode")
	}
	if *sealsOnly {
		return fmt.Errorf("--seals_only writes markers under --out: not in Kafka mode (the archiver seals what it commits)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := kafkaio.NewProducer(strings.Split(*kafka, ","), *topicPrefix)
	if err != nil {
		return err
	}
	defer p.Close()
	// The truth is of the batch run that will see the records: for a live
	// stream, the one on the day the last record arrives.
	asOf, window := cfg.AsOf(), cfg.WindowDays
	if *live {
		took := time.Duration(0)
		if *rateLimit > 0 {
			took = time.Duration(float64(cfg.Events) / *rateLimit * float64(time.Second))
		}
		asOf, window = time.Now().Add(took).UTC(), cfg.Days+cfg.WindowDays
	}
	tb := gen.NewTruthBuilder(cfg.Seed, asOf, window)
	ks := gen.NewKafkaSink(ctx, p, *rateLimit, *live, tb)
	t0 := time.Now()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(os.Stderr, "gen: %d records sent (%.0f/s)\n", ks.Sent, float64(ks.Sent)/time.Since(t0).Seconds())
			}
		}
	}()
	err = gen.Generate(cfg, ks)
	if err == nil {
		err = ks.Close()
	}
	close(done)
	if err != nil {
		return fmt.Errorf("after %d records: %w", ks.Sent, err)
	}
	fmt.Printf("gen: %d records to Kafka %s (topics %s<kind>) in %.1fs\n", ks.Sent, *kafka, *topicPrefix, time.Since(t0).Seconds())
	if *truth != "none" {
		path := *truth
		if path == "" {
			path = "truth.json"
		}
		tr := tb.Truth()
		if err := tr.WriteFile(path); err != nil {
			return err
		}
		fmt.Printf("gen: truth for as_of %s over %d days in %s\n", tr.AsOf, tr.WindowDays, path)
	}
	return nil
}

const synopsis = `usage: gen [flags]

Deterministic synthetic traffic, in the raw layout (--out) with its ground
truth, or onto Kafka (--kafka).`

var groups = []help.Group{
	{Title: "The traffic", Flags: []string{"seed", "start", "days", "events", "apps", "window_days", "offline_share", "skew_share", "too_old", "invalid_share", "junk"}},
	{Title: "Files", Flags: []string{"out", "files_per_hour", "codec", "truth", "seals_only", "s3_endpoint", "s3_region", "s3_path_style"}},
	{Title: "Kafka", Flags: []string{"kafka", "topic_prefix", "rate", "live"}},
	{Title: "The process", Flags: []string{"version"}},
}
