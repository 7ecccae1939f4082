package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/cmd/internal/metricsflags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// benchStream measures the speed layer on prism against Kafka:
//   - catch-up: a backlog of historical events (days old, in event-time
//     order) read from the earliest offset until the store has counted
//     every one, next to a plain franz-go consumer decoding the same
//     backlog (the baseline): a dense one (--dense events over one hour of
//     event time, the target shape) and a sparse one (--sparse events over
//     a day, a few per window);
//   - latency at steady rates: marker events (each of an app of its own)
//     are produced among the generated traffic, and the store is polled
//     until each is visible; p50, p99 and max over the markers, per rate.
func benchStream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench stream", flag.ContinueOnError)
	addr := fs.String("kafka", os.Getenv("LUMEN_TEST_KAFKA"), "Kafka broker host:port (default $LUMEN_TEST_KAFKA; empty: in-process kfake)")
	dense := fs.Int("dense", 5_000_000, "Events in the dense catch-up backlog (one hour of event time); 0 skips it.")
	sparse := fs.Int("sparse", 300_000, "Events in the sparse catch-up backlog (--sparse_days of event time); 0 skips it.")
	sparseDays := fs.Int("sparse_days", 1, "Days of event time the sparse backlog spans.")
	rates := fs.String("rates", "5000", "Events/s of the latency runs, comma-separated; empty skips them.")
	dur := fs.Duration("duration", 60*time.Second, "Length of each latency run.")
	markers := fs.Float64("markers", 4, "Latency markers per second.")
	every := fs.Duration("every", 2*time.Second, "The stream's early-firing interval.")
	lateHorizon := fs.Duration("late_horizon", 0, "The stream's --late_horizon (0: its default).")
	metricsAddr := fs.String("metrics_addr", "", "Serve the running stream's metrics (launch.StreamMetrics) at http://ADDR/metrics.")
	apps := fs.Int("apps", 50, "Generated apps.")
	partitions := fs.Int("partitions", 3, "Partitions per topic.")
	profile := fs.String("cpuprofile", "", "Write a CPU profile of the first catch-up's stream here.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *metricsAddr != "" {
		if *jobopts.JobName == "" {
			*jobopts.JobName = "lumen-bench-stream"
		}
		jm := &launch.StreamMetrics{Endpoint: func() string { return *jobopts.Endpoint }, JobName: *jobopts.JobName}
		if _, err := metricsflags.Serve(ctx, "bench", *metricsAddr, metricsflags.NewRegistry(jm)); err != nil {
			return err
		}
	}
	brokers, where := []string{*addr}, "real Kafka at "+*addr
	if *addr == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return err
		}
		defer c.Close()
		brokers, where = c.ListenAddrs(), "kfake (in-process; set --kafka for a real broker)"
	}
	dir, err := os.MkdirTemp("", "lumen-bench-stream")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("bench stream: %s, prism, %d partitions per topic, every %v, %d apps\n", where, *partitions, *every, *apps)

	// 1. Catch-up over historical backlogs.
	past := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	var rows []catchUp
	for _, b := range []struct {
		name   string
		events int
		span   time.Duration
		days   int
	}{{"dense: 1 hour of event time", *dense, time.Hour, 1}, {fmt.Sprintf("sparse: %d day(s) of event time", *sparseDays), *sparse, 0, *sparseDays}} {
		if b.events == 0 {
			continue
		}
		start := past.AddDate(0, 0, 1-b.days)
		cfg := gen.Config{Seed: 5, Start: start, Days: b.days, Events: b.events, Apps: *apps, Punctual: true, Span: b.span}
		r, err := benchCatchUp(ctx, brokers, int32(*partitions), dir, b.name, cfg, *every, *lateHorizon, *profile)
		if err != nil {
			return err
		}
		rows = append(rows, r)
		*profile = "" // the first backlog's
	}

	// 2. Latency at steady rates.
	var lats []latencyRun
	if *rates != "" {
		for _, f := range strings.Split(*rates, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || rate <= 0 {
				return fmt.Errorf("--rates: %q", f)
			}
			l, err := benchLatency(ctx, brokers, int32(*partitions), dir, rate, *dur, *markers, *apps, *every, *lateHorizon)
			if err != nil {
				return err
			}
			lats = append(lats, l)
		}
	}

	if len(rows) > 0 {
		fmt.Println()
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "catch-up from earliest (historical)\tevents\tconsumer ev/s\tstream s\tstream ev/s\tvs consumer\tlate\texact\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.0f\t%.3fx\t%d\t%v\t\n", r.name, r.events, r.baseRate(), r.took.Seconds(),
				r.rate(), r.rate()/r.baseRate(), r.late, r.exact)
		}
		tw.Flush()
	}
	if len(lats) > 0 {
		fmt.Println()
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "live: produce → visible in store\trate ev/s\tmarkers\tp50\tp99\tmax\tall counted\t")
		for _, l := range lats {
			fmt.Fprintf(tw, "live-stamped traffic\t%.0f\t%d\t%.2fs\t%.2fs\t%.2fs\t%v\t\n", l.rate, len(l.lat),
				pct(l.lat, 50).Seconds(), pct(l.lat, 99).Seconds(), slices.Max(l.lat).Seconds(), l.counted)
		}
		tw.Flush()
	}
	return nil
}

// catchUp is one catch-up measurement.
type catchUp struct {
	name       string
	events     int64
	base, took time.Duration
	late       int64
	exact      bool
}

func (c catchUp) rate() float64     { return float64(c.events) / c.took.Seconds() }
func (c catchUp) baseRate() float64 { return float64(c.events) / c.base.Seconds() }

// benchCatchUp produces cfg's events onto fresh topics in arrival order
// (not re-stamped: a replay of the past), consumes them with the baseline,
// then runs the stream from the earliest offset until the store has
// counted every event.
func benchCatchUp(ctx context.Context, brokers []string, partitions int32, dir, name string, cfg gen.Config, every, lateHorizon time.Duration, profile string) (catchUp, error) {
	r := catchUp{name: name}
	prefix := kafkatest.Prefix("bench-catchup")
	if err := kafkatest.CreateTopics(ctx, brokers, prefix, partitions); err != nil {
		return r, err
	}
	cfg.EnsureDefaults()
	tally := newTally()
	t0 := time.Now()
	if err := sendGen(ctx, brokers, prefix, cfg, 0, false, tally); err != nil {
		return r, err
	}
	r.events = tally.valid.Load()
	fmt.Printf("%s: %d events produced in %.1fs\n", name, r.events, time.Since(t0).Seconds())

	baseStart := time.Now()
	if _, err := consumeAll(ctx, brokers, prefix, r.events); err != nil {
		return r, err
	}
	r.base = time.Since(baseStart)

	store := "sqlite:" + filepath.Join(dir, prefix+"db")
	st, err := serving.Open(ctx, store)
	if err != nil {
		return r, err
	}
	defer st.Close()
	stopProfile := startProfile(profile)
	streamStart := time.Now()
	stop, err := runStream(brokers, prefix, store, kafkaio.StartEarliest, every, lateHorizon)
	if err != nil {
		return r, err
	}
	from, to := cfg.Start.AddDate(0, 0, -1), cfg.Start.AddDate(0, 0, cfg.Days+1)
	r.exact = waitCounted(ctx, st, tally, from, to, 30*time.Minute)
	r.took = time.Since(streamStart)
	stopProfile()
	r.late = lateCount(ctx, st, tally, from, to)
	stop()
	fmt.Printf("%s: the stream counted them in %.1fs\n", name, r.took.Seconds())
	if !r.exact {
		return r, fmt.Errorf("%s: the stream did not count the backlog exactly within 30 minutes", name)
	}
	return r, nil
}

// latencyRun is one latency measurement.
type latencyRun struct {
	rate    float64
	lat     []time.Duration
	counted bool
}

func benchLatency(ctx context.Context, brokers []string, partitions int32, dir string, rate float64, d time.Duration, markers float64, apps int, every, lateHorizon time.Duration) (latencyRun, error) {
	l := latencyRun{rate: rate}
	prefix := kafkatest.Prefix(fmt.Sprintf("bench-live%.0f", rate))
	if err := kafkatest.CreateTopics(ctx, brokers, prefix, partitions); err != nil {
		return l, err
	}
	store := "sqlite:" + filepath.Join(dir, prefix+"db")
	st, err := serving.Open(ctx, store)
	if err != nil {
		return l, err
	}
	defer st.Close()
	stop, err := runStream(brokers, prefix, store, kafkaio.StartLatest, every, lateHorizon)
	if err != nil {
		return l, err
	}
	defer stop()
	l.lat, l.counted, err = measureLatency(ctx, brokers, prefix, st, rate, d, markers, apps)
	return l, err
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// tally counts what was sent, per kind and app (gen.Sink).
type tally struct {
	valid atomic.Int64
	mu    sync.Mutex
	byApp map[event.Kind]map[string]int64
}

func newTally() *tally {
	t := &tally{byApp: map[event.Kind]map[string]int64{}}
	for _, k := range event.Kinds {
		t.byApp[k] = map[string]int64{}
	}
	return t
}

func (t *tally) Record(r *gen.Record) error {
	if r.Invalid != "" {
		return nil
	}
	t.valid.Add(1)
	t.mu.Lock()
	t.byApp[r.Event.Kind][r.Event.AppID]++
	t.mu.Unlock()
	return nil
}

func (t *tally) DayDone(time.Time) error { return nil }

// sendGen sends cfg at rate (0: unlimited), re-stamped to the wall clock
// if live.
func sendGen(ctx context.Context, brokers []string, prefix string, cfg gen.Config, rate float64, live bool, then gen.Sink) error {
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		return err
	}
	defer p.Close()
	ks := gen.NewKafkaSink(ctx, p, rate, live, then)
	if err := gen.Generate(cfg, ks); err != nil {
		return err
	}
	return ks.Close()
}

// consumeAll is the baseline: a plain consumer decoding every record.
func consumeAll(ctx context.Context, brokers []string, prefix string, want int64) (int64, error) {
	var topics []string
	for _, k := range event.Kinds {
		topics = append(topics, kafkaio.Topic(prefix, k))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	d := event.NewDecoder()
	var n int64
	var e event.Event
	deadline := time.Now().Add(5 * time.Minute)
	for n < want && time.Now().Before(deadline) {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if d.DecodeSingle(r.Value, &e) == nil {
				n++
			}
		})
	}
	if n < want {
		return n, fmt.Errorf("baseline consumed %d of %d", n, want)
	}
	return n, nil
}

// runStream starts the speed layer; stop cancels it and waits.
func runStream(brokers []string, prefix, store string, start kafkaio.StartPosition, every, lateHorizon time.Duration) (stop func(), err error) {
	p, s := beam.NewPipelineWithRoot()
	cfg := pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers, Start: start}, TopicPrefix: prefix, Store: store, Every: every,
		LateHorizon: lateHorizon}
	sr, err := launch.StartStream(context.Background(), &cfg)
	if err != nil {
		return nil, err
	}
	if err := pipelines.BuildStream(s, cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := launch.RunStream(ctx, p, sr); err != nil {
			fmt.Fprintln(os.Stderr, "bench stream:", err)
		}
		close(done)
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
		}
	}, nil
}

// counted sums the speed layer's day counts (all versions) per kind and app
// of the tally over the days [from, to], and reports whether they equal
// what was sent.
func counted(ctx context.Context, st serving.Store, t *tally, from, to time.Time) (int64, bool) {
	var total int64
	all := true
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, apps := range t.byApp {
		for app, want := range apps {
			pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: k, AppID: app, Version: aggregate.AllVersions,
				Gran: aggregate.Day, From: from, To: to})
			if err != nil {
				return total, false
			}
			var got int64
			for _, p := range pts {
				got += p.Count
			}
			total += got
			all = all && got == want
		}
	}
	return total, all
}

// lateCount sums the late drops (all versions, per hour) of the tally's
// kinds and apps over the days [from, to].
func lateCount(ctx context.Context, st serving.Store, t *tally, from, to time.Time) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for k, apps := range t.byApp {
		for app := range apps {
			pts, _ := st.Late(ctx, serving.CountQuery{Kind: k, AppID: app, Version: aggregate.AllVersions,
				Gran: aggregate.Hour, From: from, To: to})
			for _, p := range pts {
				n += p.Count
			}
		}
	}
	return n
}

func waitCounted(ctx context.Context, st serving.Store, t *tally, from, to time.Time, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, ok := counted(ctx, st, t, from, to); ok {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// measureLatency produces generated traffic at rate for d, with markers
// per second each of an app of its own, and polls the store for each
// marker's minute count. It returns the markers' latencies and whether
// the stream counted all the traffic by the end.
func measureLatency(ctx context.Context, brokers []string, prefix string, st serving.Store, rate float64, d time.Duration, perSec float64, apps int) ([]time.Duration, bool, error) {
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		return nil, false, err
	}
	defer p.Close()
	// Wait until the stream reads at the head: a probe must be counted.
	probe := func(app string, at time.Time) {
		e := event.Event{Kind: event.AppLoad, AppID: app, AppVersion: "1", Platform: "android",
			DeviceID: []byte(app), EventTime: at.UnixMilli(), ReceivedTime: at.UnixMilli()}
		p.Produce(ctx, &e)
		p.Flush(ctx)
	}
	visible := func(app string, at time.Time) bool {
		pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: event.AppLoad, AppID: app, Version: aggregate.AllVersions,
			Gran: aggregate.Minute, From: at.Add(-time.Minute), To: at.Add(time.Minute)})
		return err == nil && len(pts) > 0
	}
	ready := false
	started := time.Now()
	for i := 0; i < 240 && !ready; i++ {
		probe("bench-probe", time.Now())
		time.Sleep(500 * time.Millisecond)
		ready = visible("bench-probe", started) || visible("bench-probe", time.Now())
	}
	if !ready {
		return nil, false, fmt.Errorf("the stream counted no probe within 2 minutes")
	}

	type marker struct {
		app      string
		at, seen time.Time
	}
	var mu sync.Mutex
	var ms []*marker
	tally := newTally()
	// The run lasts as long as the generator takes to send rate×d events.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	genDone := make(chan error, 1)
	go func() {
		defer cancel()
		cfg := gen.Config{Seed: 9, Start: time.Now().UTC().Truncate(24 * time.Hour), Days: 1,
			Events: int(rate * d.Seconds()), Apps: apps, Punctual: true}
		cfg.EnsureDefaults()
		genDone <- sendGen(ctx, brokers, prefix, cfg, rate, true, tally)
	}()
	go func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / perSec))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			m := &marker{app: fmt.Sprintf("bench-marker-%05d", i), at: time.Now()}
			mu.Lock()
			ms = append(ms, m)
			mu.Unlock()
			e := event.Event{Kind: event.AppLoad, AppID: m.app, AppVersion: "1", Platform: "android",
				DeviceID: []byte(m.app), EventTime: m.at.UnixMilli(), ReceivedTime: m.at.UnixMilli()}
			p.Produce(ctx, &e)
		}
	}()
	// Poll until the run ends and every marker is seen (or 60 s more).
	end := time.Now().Add(2*d + 60*time.Second)
	for time.Now().Before(end) {
		mu.Lock()
		pending := 0
		for _, m := range ms {
			if m.seen.IsZero() {
				if visible(m.app, m.at) {
					m.seen = time.Now()
				} else {
					pending++
				}
			}
		}
		mu.Unlock()
		if pending == 0 && runCtx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := <-genDone; err != nil {
		return nil, false, err
	}
	var lat []time.Duration
	for _, m := range ms {
		if m.seen.IsZero() {
			return nil, false, fmt.Errorf("marker %s never became visible", m.app)
		}
		lat = append(lat, m.seen.Sub(m.at))
	}
	fmt.Printf("latency run: %d events and %d markers sent at %.0f/s\n", tally.valid.Load(), len(ms), rate)
	return lat, waitCounted(ctx, st, tally, time.Now().UTC().AddDate(0, 0, -2), time.Now().UTC().AddDate(0, 0, 2), 60*time.Second), nil
}
