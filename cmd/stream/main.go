// Command stream runs lumen's speed layer: Kafka → per-minute, per-hour and
// per-day counts and today's distinct-device sketches in the speed tables,
// live within seconds (DESIGN §3).
//
// With no flags it needs nothing installed: it starts an in-process Kafka
// (kfake), feeds it live generated traffic, runs the stream on prism into
// ./lumen.db and shows a per-minute table of what was sent next to what the
// speed layer counts.
//
//	go run ./cmd/stream
//	go run ./cmd/stream --brokers=k1:9092,k2:9092 --store=cassandra://c1:9042/lumen --start=committed --group=lumen-stream
//
// On a portable runner (README, "Running at scale") the same binary is the
// launcher and, with --worker_pool, the SDK workers' pool. A stop (an
// interrupt, or --for) cancels the job on the job service; with --async the
// command returns once the job is submitted and the job runs on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
	"github.com/lumenhq/lumen/cmd/internal/cassandraflags"
	"github.com/lumenhq/lumen/cmd/internal/help"
	"github.com/lumenhq/lumen/cmd/internal/kafkaflags"
	"github.com/lumenhq/lumen/cmd/internal/metricsflags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
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
	brokers     = flag.String("brokers", "", "Kafka brokers host:port,…; empty runs the demo: an in-process Kafka fed live generated traffic.")
	topicPrefix = flag.String("topic_prefix", kafkaio.DefaultTopicPrefix, "Event topics are <prefix>app_load, <prefix>crash, <prefix>handled_exception.")
	start       = flag.String("start", "latest", "Where to start reading: latest, earliest, committed (needs --group) or an RFC3339 time.")
	group       = flag.String("group", "", "Consumer group for --start=committed and --commit_offsets.")
	commit      = flag.Bool("commit_offsets", false, "Commit read offsets to --group: after a stop, where the drained readers ended; while running, once the runner has persisted a bundle (a --start=committed restart after a kill reads the killed run again whole).")
	store       = flag.String("store", "sqlite:lumen.db", "Store URL: sqlite:PATH or cassandra://h1,h2:9042/keyspace?rate=…")
	every       = flag.Duration("every", 2*time.Second, "How often open minute windows fire early (counts are live within about this).")
	lateHorizon = flag.Duration("late_horizon", 24*time.Hour, "Late events within this of the watermark are counted per window; older ones one by one.")
	maxOOO      = flag.Duration("max_out_of_order", 2*time.Minute, "How far behind a partition's newest event time its events may be before they are late.")
	maxFuture   = flag.Duration("max_future", event.DefaultMaxFuture, "Events stamped further than this ahead of the clock are dead letters (future_time); no watermark passes the clock plus this.")
	precision   = flag.Int("precision", 14, "HyperLogLog++ precision of today's sketches (4..18).")
	noDeadTopic = flag.Bool("no_deadletter_topic", false, "Do not send dead letters to <prefix>deadletter (they are still counted).")
	rateLimit   = flag.Float64("rate", 500, "Demo: generated events per second.")
	apps        = flag.String("apps", "", "Apps the live table shows (comma-separated). Demo: the generator's; otherwise: those with batch rows this month.")
	refresh     = flag.Duration("refresh", 2*time.Second, "How often the live table is redrawn; 0 hides it.")
	runFor      = flag.Duration("for", 0, "Stop after this long (0: until interrupted).")
	verbose     = flag.Bool("verbose", false, "Show the runner's own logs.")
	casFlags    = cassandraflags.Register(flag.CommandLine)
	kafkaSec    = kafkaflags.Register(flag.CommandLine)
	metricsAddr = metricsflags.Register(flag.CommandLine, "127.0.0.1:9464")
	workerPool  = flag.String("worker_pool", "", "Serve a Beam worker pool on localhost:PORT (PORT, or localhost:PORT; 0 picks one) for jobs submitted with --environment_type=EXTERNAL, instead of running a job.")
)

func main() {
	version := buildinfo.Flag(flag.CommandLine)
	h := help.Install(flag.CommandLine, beamFlags, synopsis, groups...)
	flag.Parse()
	buildinfo.ExitIfAsked(version, "stream")
	h.ExitIfBeamAsked()
	if !*verbose {
		beamlog.LogLevel = "warn"
	}
	if *runners.Runner == "" {
		*runners.Runner = "prism"
	}
	if *runners.Runner == "prism" && *jobopts.Endpoint != "" {
		// prism given a job service is the universal runner (prism.Execute
		// hands it over), and the stream stops the way it stops on one.
		*runners.Runner = "universal"
	}
	if *jobopts.JobName == "" {
		// A name to find the job by in the runner, and to cancel it by.
		*jobopts.JobName = "lumen-stream-" + time.Now().UTC().Format("20060102-150405")
	}
	// No password in --store: it would travel in the pipeline's options
	// and DoFns. This process keeps it in its environment.
	if clean, err := casFlags.Store(*store); err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(2)
	} else if clean != *store {
		flag.Set("store", clean)
	}
	beam.Init()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *workerPool != "" {
		err := launch.ServeWorkers(ctx, *workerPool, func(addr string) {
			fmt.Fprintf(os.Stderr, "stream: worker pool at %s (pid %d): submit with --environment_type=EXTERNAL --environment_config=%s\n",
				addr, os.Getpid(), addr)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "stream: --worker_pool:", err)
			os.Exit(1)
		}
		return
	}
	if *runFor > 0 {
		// Cancel, not a deadline: prism (2.77) panics on a worker stream
		// ending with DeadlineExceeded, and handles Canceled.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		time.AfterFunc(*runFor, cancel)
	}
	if !*verbose {
		// prism logs its progress at INFO; the live table is the progress.
		slog.SetLogLoggerLevel(slog.LevelWarn)
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg := pipelines.StreamConfig{
		TopicPrefix: *topicPrefix, Store: *store, Every: *every, LateHorizon: *lateHorizon,
		Precision: uint8(*precision), NoDeadLetterTopic: *noDeadTopic, MaxFuture: *maxFuture,
		Kafka: kafkaio.ReadConfig{Group: *group, CommitOffsets: *commit, MaxOutOfOrder: *maxOOO},
	}
	pos, at, err := kafkaio.ParseStart(*start)
	if err != nil {
		return fmt.Errorf("--start: %w", err)
	}
	if cfg.Kafka.Security, err = kafkaSec.Security(); err != nil {
		return err
	}
	cfg.Kafka.Start, cfg.Kafka.StartTimeMs = pos, at.UnixMilli()

	var demo *demoFeed
	if *brokers == "" {
		if demo, err = startDemo(ctx, *topicPrefix, *rateLimit); err != nil {
			return err
		}
		defer demo.close()
		cfg.Kafka.Brokers = demo.brokers
		fmt.Fprintf(os.Stderr, "stream: demo: in-process Kafka at %s, %.0f generated events/s, store %s\n",
			strings.Join(demo.brokers, ","), *rateLimit, serving.Redact(*store))
	} else {
		cfg.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	st, err := serving.Open(ctx, *store)
	if err != nil {
		return fmt.Errorf("--store: %w", err)
	}
	defer st.Close()

	// Where the run starts, planned against the runs the store holds, so
	// that a replay never adds to what an earlier run counted. A job
	// handed to the runner without waiting (--async, --dry_run) is not
	// planned: it starts where --start says, and its rows add up.
	var sr *launch.StreamRun
	if !detached() {
		if sr, err = launch.StartStream(ctx, &cfg); err != nil {
			return err
		}
	}
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildStream(s, cfg); err != nil {
		return err
	}
	// The job's metrics, read from its job service at each scrape: prism
	// in process sets the endpoint when it starts the job.
	jm := &launch.StreamMetrics{Endpoint: func() string { return *jobopts.Endpoint }, JobName: *jobopts.JobName}
	defer jm.Close()
	if addr, err := metricsflags.Serve(ctx, "stream", *metricsAddr, metricsflags.NewRegistry(jm)); err != nil {
		return err
	} else if addr != "" {
		fmt.Fprintf(os.Stderr, "stream: metrics at http://%s/metrics\n", addr)
	}
	done := make(chan error, 1)
	go func() { done <- launch.RunStream(ctx, p, sr) }()
	if demo != nil {
		go demo.feed(ctx)
	}
	var tick <-chan time.Time
	if *refresh > 0 {
		t := time.NewTicker(*refresh)
		defer t.Stop()
		tick = t.C
	}
	clear := isTerminal(os.Stdout)
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil && err == nil {
				fmt.Fprintln(os.Stderr, "stream: stopped")
				return nil
			}
			if err == nil && detached() {
				fmt.Fprintf(os.Stderr, "stream: job %s handed to the runner (--async or --dry_run); it runs until cancelled there\n", jobopts.GetJobName())
				return nil
			}
			if err == nil {
				err = errors.New("the stream ended")
			}
			return err
		case <-tick:
			watch := watchedApps(ctx, st, demo)
			if err := drawTable(ctx, os.Stdout, st, watch, demo, clear); err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "stream: table:", err)
			}
		}
	}
}

// detached reports whether the runner returns without running the job to
// its end: a submission with --async, or Dataflow's --dry_run.
func detached() bool {
	if *jobopts.Async {
		return true
	}
	f := flag.Lookup("dry_run")
	return f != nil && f.Value.String() == "true"
}

// watchedApps are the apps the table sums over.
func watchedApps(ctx context.Context, st serving.Store, demo *demoFeed) []string {
	if *apps != "" {
		return strings.Split(*apps, ",")
	}
	if demo != nil {
		return demo.apps()
	}
	now := time.Now().UTC()
	seen := map[string]bool{}
	for _, k := range event.Kinds {
		as, _, err := serving.BatchCatalog(ctx, st, k, now.AddDate(0, 0, -1), now)
		if err != nil {
			continue
		}
		for _, a := range as {
			seen[a] = true
		}
	}
	var out []string
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// drawTable prints the last five minutes: per kind, what the speed layer
// counts over the watched apps (and, in the demo, what was sent), and the
// events it dropped as late.
func drawTable(ctx context.Context, w io.Writer, st serving.Store, watch []string, demo *demoFeed, clear bool) error {
	now := time.Now().UTC()
	first := now.Truncate(time.Minute).Add(-4 * time.Minute)
	counted := map[event.Kind]map[time.Time]int64{}
	late := map[time.Time]int64{}
	for _, k := range event.Kinds {
		counted[k] = map[time.Time]int64{}
		for _, app := range watch {
			q := serving.CountQuery{Kind: k, AppID: app, Version: aggregate.AllVersions, Gran: aggregate.Minute, From: first, To: now}
			pts, err := st.Counts(ctx, serving.Speed, q)
			if err != nil {
				return err
			}
			for _, p := range pts {
				counted[k][p.Bucket] += p.Count
			}
			if pts, err = st.Late(ctx, q); err != nil {
				return err
			}
			for _, p := range pts {
				late[p.Bucket] += p.Count
			}
		}
	}
	var b strings.Builder
	if clear {
		b.WriteString("\033[H\033[2J")
	}
	fmt.Fprintf(&b, "lumen speed layer, %s UTC: %d apps, store %s\n\n", now.Format("15:04:05"), len(watch), serving.Redact(*store))
	fmt.Fprintf(&b, "%-8s", "minute")
	for _, k := range event.Kinds {
		fmt.Fprintf(&b, " %22s", k)
	}
	fmt.Fprintf(&b, " %10s\n", "late")
	if demo != nil {
		fmt.Fprintf(&b, "%-8s", "")
		for range event.Kinds {
			fmt.Fprintf(&b, " %22s", "counted / sent")
		}
		fmt.Fprintln(&b)
	}
	for m := first; !m.After(now); m = m.Add(time.Minute) {
		fmt.Fprintf(&b, "%-8s", m.Format("15:04"))
		for _, k := range event.Kinds {
			cell := fmt.Sprint(counted[k][m])
			if demo != nil {
				cell = fmt.Sprintf("%d / %d", counted[k][m], demo.sentIn(k, m))
			}
			fmt.Fprintf(&b, " %22s", cell)
		}
		fmt.Fprintf(&b, " %10d\n", late[m])
	}
	if demo != nil {
		b.WriteString("\nsent = events the generator produced with that minute's event time; a minute's\n" +
			"late devices report later, and those events show under \"late\" instead.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// demoFeed is the demo's in-process Kafka and the live generator feeding
// it, with a tally of what it sent per kind and minute of bucket time.
type demoFeed struct {
	cluster *kfake.Cluster
	brokers []string
	prefix  string
	rate    float64

	mu   sync.Mutex
	sent map[event.Kind]map[time.Time]int64
	seen map[string]int64
}

func startDemo(ctx context.Context, prefix string, rate float64) (*demoFeed, error) {
	topics := []string{kafkaio.DeadLetterTopic(prefix)}
	for _, k := range event.Kinds {
		topics = append(topics, kafkaio.Topic(prefix, k))
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		return nil, fmt.Errorf("demo kafka: %w", err)
	}
	d := &demoFeed{cluster: c, brokers: c.ListenAddrs(), prefix: prefix, rate: rate,
		sent: map[event.Kind]map[time.Time]int64{}, seen: map[string]int64{}}
	for _, k := range event.Kinds {
		d.sent[k] = map[time.Time]int64{}
	}
	return d, nil
}

func (d *demoFeed) close() { d.cluster.Close() }

// feed sends generated traffic live until ctx ends, in rounds of thirty
// seconds of it, a new seed each round. A round is generated while the one
// before it is sent, so the traffic does not pause. The stream starts at
// the head, so the first events go out once it has had a moment to start.
func (d *demoFeed) feed(ctx context.Context) {
	p, err := kafkaio.NewProducer(d.brokers, d.prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream: demo producer:", err)
		return
	}
	defer p.Close()
	rounds := make(chan []gen.Record, 1)
	go func() {
		defer close(rounds)
		for seed := uint64(1); ctx.Err() == nil; seed++ {
			cfg := gen.Config{Seed: seed, Start: time.Now().UTC().Truncate(24 * time.Hour), Days: 1,
				Events: max(1000, int(d.rate*30)), Apps: 12}
			var round records
			if err := gen.Generate(cfg, &round); err != nil {
				fmt.Fprintln(os.Stderr, "stream: demo generator:", err)
				return
			}
			select {
			case rounds <- round:
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		return
	case <-time.After(5 * time.Second):
	}
	for round := range rounds {
		ks := gen.NewKafkaSink(ctx, p, d.rate, true, d)
		for i := range round {
			ks.Record(&round[i])
		}
		if err := ks.Close(); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "stream: demo generator:", err)
			return
		}
	}
}

// records collects generated records (gen.Sink).
type records []gen.Record

func (rs *records) Record(r *gen.Record) error {
	c := *r
	c.Event = r.Event.Clone()
	*rs = append(*rs, c)
	return nil
}

func (rs *records) DayDone(time.Time) error { return nil }

// Record tallies a sent record (gen.Sink).
func (d *demoFeed) Record(r *gen.Record) error {
	if r.Invalid != "" {
		return nil
	}
	e := &r.Event
	when := min(e.EventTime, e.ReceivedTime)
	d.mu.Lock()
	d.sent[e.Kind][time.UnixMilli(when).UTC().Truncate(time.Minute)]++
	d.seen[e.AppID]++
	d.mu.Unlock()
	return nil
}

// DayDone does nothing (gen.Sink).
func (d *demoFeed) DayDone(time.Time) error { return nil }

func (d *demoFeed) sentIn(k event.Kind, minute time.Time) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent[k][minute]
}

func (d *demoFeed) apps() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for a := range d.seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

const synopsis = `usage: stream [flags]

The speed layer: reads the three kinds from Kafka and writes live counts and
today's sketches to --store, every --every, until stopped. A stop drains:
a restart with --start=committed counts every event once.`

var groups = []help.Group{
	{Title: "Kafka", Flags: []string{"brokers", "topic_prefix", "group", "start", "commit_offsets", "no_deadletter_topic"}},
	{Title: "Kafka security", Flags: []string{"kafka_tls", "kafka_tls_ca", "kafka_tls_cert", "kafka_tls_key", "kafka_tls_server_name", "kafka_tls_insecure", "kafka_sasl", "kafka_user", "kafka_password_file", "kafka_password_env"}},
	{Title: "Windows and lateness", Flags: []string{"every", "max_out_of_order", "late_horizon", "max_future", "precision"}},
	{Title: "The store", Flags: []string{"store", "cassandra_username", "cassandra_password_file"}},
	{Title: "The live table and the demo", Flags: []string{"apps", "refresh", "rate"}},
	{Title: "The process", Flags: []string{"for", "verbose", "metrics_addr", "worker_pool", "version"}},
}
