// Command batch runs lumen's daily batch layer: it recomputes the last
// window_days days from the raw Avro layout and overwrites the batch tables
// (DESIGN §3). With no flags it reads the bundled sample into ./lumen.db.
//
//	go run ./cmd/batch --runner=direct
//	go run ./cmd/batch --input=s3://bucket/root --as_of=2026-11-24 --store=cassandra://h1,h2:9042/lumen
//	go run ./cmd/batch --from=2026-11-01 --to=2026-11-24   # backfill, oldest first
//
// On a portable runner (README, "Running at scale") the same binary is the
// launcher and, with --worker_pool, the SDK workers' pool:
//
//	batch --worker_pool=50000 &
//	batch --runner=universal --endpoint=JOBSERVER:8099 --environment_type=EXTERNAL \
//	    --environment_config=localhost:50000 --worker_binary=$(command -v batch) --input=s3://… --store=cassandra://…
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
	"github.com/lumenhq/lumen/cmd/internal/cassandraflags"
	"github.com/lumenhq/lumen/cmd/internal/help"
	"github.com/lumenhq/lumen/cmd/internal/s3flags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	_ "github.com/lumenhq/lumen/serving/cassandrastore" // cassandra:// stores
	_ "github.com/lumenhq/lumen/serving/sqlitestore"    // sqlite: stores
)

// beamFlags are the flags of the imported packages (Beam's): the first
// variable of the package, so it is set before lumen's flags are defined.
var beamFlags = help.Snapshot(flag.CommandLine)

var (
	input       = flag.String("input", "testing/sample", "Root of the raw Avro layout: a directory or s3://bucket/prefix.")
	asOf        = flag.String("as_of", "latest", "Day to run for, YYYY-MM-DD; \"latest\" is the newest arrival day in --input before today (UTC).")
	partialDay  = flag.Bool("allow_partial_day", false, "Allow an --as_of of today or later: the run records \"partial\" and does not move the watermark.")
	incomplete  = flag.Bool("allow_incomplete", false, "Record a run whose input for --as_of is not sealed by the archiver as succeeded, moving the watermark.")
	windowDays  = flag.Int("window_days", 30, "Days in the window [as_of-window_days+1, as_of].")
	from        = flag.String("from", "", "Backfill: first as_of day (YYYY-MM-DD). Needs --to.")
	to          = flag.String("to", "", "Backfill: last as_of day (YYYY-MM-DD). Runs oldest first.")
	store       = flag.String("store", "sqlite:lumen.db", "Store URL: sqlite:PATH or cassandra://h1,h2:9042/keyspace?rate=…")
	deadLetters = flag.String("deadletter_root", "", "Root for dead letters (deadletter/batch/dt=…). Default: --input.")
	deadKeep    = flag.Duration("deadletter_retention", 90*24*time.Hour, "How long a run's dead-letter days are kept: a run deletes those more than this before its --as_of (0: keep all).")
	precision   = flag.Int("precision", 14, "HyperLogLog++ precision of the daily sketches (4..18).")
	unitBytes   = flag.Int64("unit_bytes", 64<<20, "Target bytes per work unit.")
	openCost    = flag.Int64("open_cost", 16<<10, "What opening one file is worth, in bytes, when packing units.")
	parallelism = flag.Int("read_parallelism", 16, "Minimum number of work units to aim for.")
	concurrency = flag.Int("read_concurrency", 16, "Files fetched at once within a work unit.")
	quiet       = flag.Bool("quiet", false, "No progress lines and no summary.")
	verbose     = flag.Bool("verbose", false, "Show the runner's own logs.")
	s3Flags     = s3flags.Register(flag.CommandLine)
	casFlags    = cassandraflags.Register(flag.CommandLine)
	verify      = flag.String("verify", pipelines.VerifyWindow, "What a run that extends the window state lists: window (every arrival day: a changed old partition is found) or new (only the days since the state's: faster, and blind to changes of older days until a run with window or --full).")
	full        = flag.Bool("full", false, "Recompute every partition from raw, ignoring rollups (and rewrite them).")
	noRollups   = flag.Bool("no_rollups", false, "Neither read nor write rollups: every partition from raw, nothing written under rollup/.")
	rollupRoot  = flag.String("rollup_root", "", "Root for rollups (rollup/<kind>/dt=…). Default: --input.")
	rollupGrain = flag.String("rollup_grain", "day", "Arrival partition a rollup covers: day or hour.")
	maxFuture   = flag.Duration("max_future", event.DefaultMaxFuture, "An event or received time further than this ahead of the run's start is a future_time dead letter.")
	workerPool  = flag.String("worker_pool", "", "Serve a Beam worker pool on localhost:PORT (PORT, or localhost:PORT; 0 picks one) for jobs submitted with --environment_type=EXTERNAL, instead of running a job.")
)

func main() {
	version := buildinfo.Flag(flag.CommandLine)
	h := help.Install(flag.CommandLine, beamFlags, synopsis, groups...)
	flag.Parse()
	buildinfo.ExitIfAsked(version, "batch")
	h.ExitIfBeamAsked()
	if !*verbose {
		beamlog.LogLevel = "warn" // beam.Init installs the slog handler
	}
	if *runners.Runner == "" {
		*runners.Runner = "prism"
	}
	// No password in --store: it would travel in the pipeline's options
	// and DoFns. This process keeps it in its environment.
	if clean, err := casFlags.Store(*store); err != nil {
		fmt.Fprintln(os.Stderr, "batch:", err)
		os.Exit(2)
	} else if clean != *store {
		flag.Set("store", clean)
	}
	beam.Init()
	ctx := context.Background()
	if *workerPool != "" {
		if err := serveWorkers(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "batch: --worker_pool:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "batch:", err)
		os.Exit(1)
	}
}

// serveWorkers runs this binary as the worker pool of EXTERNAL jobs until
// it is interrupted. Its workers take their settings from the job's
// DoFns and their secrets from this process's environment.
func serveWorkers(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return launch.ServeWorkers(ctx, *workerPool, func(addr string) {
		fmt.Fprintf(os.Stderr, "batch: worker pool at %s (pid %d): submit with --environment_type=EXTERNAL --environment_config=%s\n",
			addr, os.Getpid(), addr)
	})
}

func run(ctx context.Context) error {
	s3o, err := s3Flags.Options()
	if err != nil {
		return err
	}
	s3fs.Configure(s3o)
	days, err := runDays(ctx)
	if err != nil {
		return err
	}
	if detached() && len(days) > 1 {
		return errors.New("--async and --dry_run hand one job to the runner; a backfill (--from/--to) runs its days one after another")
	}
	grain, err := raw.ParseGrain(*rollupGrain)
	if err != nil {
		return fmt.Errorf("--rollup_grain: %w", err)
	}
	base := pipelines.BatchConfig{
		S3:              s3o,
		Input:           strings.TrimSuffix(*input, "/"),
		WindowDays:      *windowDays,
		Store:           *store,
		DeadLetterRoot:  *deadLetters,
		Precision:       uint8(*precision),
		Plan:            raw.PlanOptions{TargetBytes: *unitBytes, OpenCost: *openCost, Parallelism: *parallelism},
		Read:            raw.ReadOptions{Concurrency: *concurrency},
		Full:            *full,
		Verify:          *verify,
		NoRollups:       *noRollups,
		RollupRoot:      strings.TrimSuffix(*rollupRoot, "/"),
		Grain:           grain,
		AllowPartialDay: *partialDay,
		AllowIncomplete: *incomplete,
		MaxFuture:       *maxFuture,
	}
	// Fail fast, with every problem named, before any job starts.
	probe := base
	probe.AsOf = days[0]
	probe.EnsureDefaults()
	if err := probe.Validate(); err != nil {
		return err
	}
	st, err := serving.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	defer st.Close()

	var took time.Duration
	named := *jobopts.JobName != ""
	for i, day := range days {
		cfg := base
		cfg.AsOf = day
		cfg.Started = time.Now().UTC()
		if !named {
			// A name to find the job by in the runner's UI.
			*jobopts.JobName = "lumen-batch-" + day.Format("20060102") + "-" + cfg.Started.Format("20060102-150405")
		}
		if len(days) > 1 && !*quiet {
			fmt.Fprintf(os.Stderr, "batch: as_of %s (%d/%d)\n", day.Format(time.DateOnly), i+1, len(days))
		}
		if err := runOne(ctx, st, cfg); err != nil {
			return fmt.Errorf("as_of %s: %w", day.Format(time.DateOnly), err)
		}
		took = time.Since(cfg.Started)
	}
	if detached() {
		fmt.Fprintf(os.Stderr, "batch: as_of %s: job %s handed to the runner (--async or --dry_run); batch_runs shows it once it has run\n",
			days[0].Format(time.DateOnly), jobopts.GetJobName())
		return nil
	}
	if !*quiet {
		last := base
		last.AsOf = days[len(days)-1]
		last.EnsureDefaults()
		return printSummary(ctx, os.Stdout, st, last, took)
	}
	return nil
}

// detached reports whether the runner returns without running the job to
// its end: a submission with --async, or Dataflow's --dry_run.
func detached() bool {
	if *jobopts.Async {
		return true
	}
	return dryRun()
}

// dryRun reports Dataflow's --dry_run: the job is translated, never run.
func dryRun() bool {
	f := flag.Lookup("dry_run")
	return f != nil && f.Value.String() == "true"
}

// runDays resolves --as_of or --from/--to into the as_of days to run.
func runDays(ctx context.Context) ([]time.Time, error) {
	parse := func(flagName, v string) (time.Time, error) {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return t, fmt.Errorf("--%s: %q is not YYYY-MM-DD", flagName, v)
		}
		return t, nil
	}
	if *from != "" || *to != "" {
		if *from == "" || *to == "" {
			return nil, errors.New("--from and --to go together")
		}
		f, err := parse("from", *from)
		if err != nil {
			return nil, err
		}
		t, err := parse("to", *to)
		if err != nil {
			return nil, err
		}
		if t.Before(f) {
			return nil, errors.New("--to is before --from")
		}
		var days []time.Time
		for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
			days = append(days, d)
		}
		return days, nil
	}
	if *asOf == "latest" {
		// Today's folder is still being written: it cannot be complete.
		today := time.Now().UTC().Truncate(24 * time.Hour)
		d, err := raw.LatestArrivalDay(ctx, *input, today)
		if err != nil {
			return nil, fmt.Errorf("--as_of=latest: %w (pass --as_of=YYYY-MM-DD)", err)
		}
		return []time.Time{d}, nil
	}
	d, err := parse("as_of", *asOf)
	if err != nil {
		return nil, err
	}
	return []time.Time{d}, nil
}

func runOne(ctx context.Context, st serving.Store, cfg pipelines.BatchConfig) error {
	cfg.EnsureDefaults()
	window := aggregate.NewDayWindow(cfg.AsOf, cfg.WindowDays)
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildBatch(s, cfg); err != nil {
		return err
	}
	// batch_runs shows the run while it runs. A running (or failed)
	// attempt keeps the watermark an earlier success of this as_of set.
	record := func(status serving.RunStatus, finished time.Time, note string) error {
		var errs []error
		for _, k := range event.Kinds {
			errs = append(errs, st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: cfg.AsOf, WindowStart: window.First,
				Started: cfg.Started, Finished: finished, Status: status, Note: note, Counters: map[string]int64{}}))
		}
		return errors.Join(errs...)
	}
	if !dryRun() {
		if err := record(serving.RunRunning, time.Time{}, ""); err != nil {
			return fmt.Errorf("record the run as running: %w", err)
		}
	}
	stop := make(chan struct{})
	if !*quiet {
		go showProgress(stop, cfg.Stamp(), cfg.Started)
	}
	_, err := beamx.RunWithMetrics(ctx, p)
	close(stop)
	if err != nil {
		// The pipeline records its end itself, after its last write; a
		// failure is recorded here, best effort, so batch_runs shows it.
		if rerr := record(serving.RunFailed, time.Now().UTC(), truncate(err.Error(), 500)); rerr != nil {
			slog.Warn("could not record the failed run", "err", rerr)
		}
		return fmt.Errorf("pipeline failed (its rows may be half rewritten; the watermark stays where it was; re-run the same --as_of to complete them): %w", err)
	}
	if !detached() {
		// Retention: the rows are written, so a failure here costs nothing
		// but space; the next run tries again.
		if r, err := launch.RetainBatch(ctx, cfg, *deadKeep); err != nil {
			slog.Warn("batch: retention failed; the next run tries again", "err", err)
		} else if r.RollupFiles+r.DeadLetterFiles > 0 {
			slog.Info("batch: retention", "rollup_files_deleted", r.RollupFiles, "deadletter_files_deleted", r.DeadLetterFiles)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// showProgress prints the read's progress of the run with stamp every 5 s.
// The counters are this process's: with the workers elsewhere (EXTERNAL,
// PROCESS, DOCKER) nothing is listed here, and the runner's own UI shows
// the progress instead.
func showProgress(stop <-chan struct{}, stamp int64, started time.Time) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			pr := pipelines.Progress(stamp)
			if pr.FilesListed == 0 {
				continue
			}
			el := time.Since(started).Seconds()
			fmt.Fprintf(os.Stderr, "batch: %4.0fs  %d/%d files read in %d units, %.2fM records (%.2fM/s)\n",
				el, pr.FilesRead, pr.FilesListed, pr.Units, float64(pr.RecordsRead)/1e6, float64(pr.RecordsRead)/1e6/el)
		}
	}
}

const synopsis = `usage: batch [flags]

The daily batch: recomputes the days [as_of-window_days+1, as_of] from the
raw layout, exactly, and overwrites them in --store. With no flags it runs
on the bundled sample into sqlite:lumen.db.`

var groups = []help.Group{
	{Title: "The run", Flags: []string{"input", "as_of", "window_days", "from", "to", "allow_partial_day", "allow_incomplete", "max_future"}},
	{Title: "The store", Flags: []string{"store", "precision", "deadletter_root", "deadletter_retention", "cassandra_username", "cassandra_password_file"}},
	{Title: "Rollups (the incremental batch)", Flags: []string{"full", "verify", "no_rollups", "rollup_root", "rollup_grain"}},
	{Title: "Reading", Flags: []string{"unit_bytes", "open_cost", "read_parallelism", "read_concurrency", "s3_endpoint", "s3_region", "s3_path_style"}},
	{Title: "The process", Flags: []string{"quiet", "verbose", "worker_pool", "version"}},
}
