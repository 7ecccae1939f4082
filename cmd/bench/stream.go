package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/gen"
	"github.com/lumenhq/lumen/testing/kafkatest"
	"github.com/lumenhq/lumen/transforms"
)

// benchStream measures the speed layer on prism against Kafka:
//   - sustained throughput: a backlog of live-stamped events read from the
//     earliest offset until the store has counted every one, next to a
//     plain franz-go consumer decoding the same backlog (the baseline);
//   - latency at a steady rate: marker events (each of an app of its own)
//     are produced among the generated traffic, and the store is polled
//     until each is visible; p50, p99 and max over the markers.
func benchStream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench stream", flag.ContinueOnError)
	addr := fs.String("kafka", os.Getenv("LUMEN_TEST_KAFKA"), "Kafka broker host:port (default $LUMEN_TEST_KAFKA; empty: in-process kfake)")
	backlog := fs.Int("backlog", 300_000, "Events in the throughput backlog.")
	rate := fs.Float64("rate", 5000, "Events/s of the latency run.")
	dur := fs.Duration("duration", 60*time.Second, "Length of the latency run.")
	markers := fs.Float64("markers", 4, "Latency markers per second.")
	every := fs.Duration("every", 2*time.Second, "The stream's early-firing interval.")
	apps := fs.Int("apps", 20, "Generated apps.")
	if err := fs.Parse(args); err != nil {
		return err
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
	fmt.Printf("bench stream: %s, prism, 3 partitions per topic, every %v\n", where, *every)

	// 1. Throughput over a backlog.
	var n int64
	var base, took time.Duration
	tally := newTally()
	if *backlog > 0 {
		if n, base, took, err = benchBacklog(ctx, brokers, dir, tally, *backlog, *apps, *every); err != nil {
			return err
		}
	}

	// 2. Latency at a steady rate.
	prefix := kafkatest.Prefix("bench-b")
	if err := kafkatest.CreateTopics(ctx, brokers, prefix, 3); err != nil {
		return err
	}
	store := "sqlite:" + filepath.Join(dir, "b.db")
	st2, err := serving.Open(ctx, store)
	if err != nil {
		return err
	}
	defer st2.Close()
	stop, err := runStream(brokers, prefix, store, kafkaio.StartLatest, *every)
	if err != nil {
		return err
	}
	defer stop()
	lat, steady, err := measureLatency(ctx, brokers, prefix, st2, *rate, *dur, *markers, *apps)
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if *backlog > 0 {
		fmt.Fprintln(tw, "run\tevents\tseconds\tevents/s\tvs baseline\t")
		fmt.Fprintf(tw, "baseline: franz-go consume + decode\t%d\t%.1f\t%.0f\t1.00x\t\n", n, base.Seconds(), float64(n)/base.Seconds())
		fmt.Fprintf(tw, "stream on prism, backlog to store\t%d\t%.1f\t%.0f\t%.2fx\t\n", tally.valid.Load(), took.Seconds(),
			float64(tally.valid.Load())/took.Seconds(), (float64(tally.valid.Load())/took.Seconds())/(float64(n)/base.Seconds()))
		tw.Flush()
		fmt.Println()
	}
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency run\trate ev/s\tmarkers\tp50\tp99\tmax\tall counted\t")
	fmt.Fprintf(tw, "produce → visible in store\t%.0f\t%d\t%.2fs\t%.2fs\t%.2fs\t%v\t\n", *rate, len(lat),
		pct(lat, 50).Seconds(), pct(lat, 99).Seconds(), slices.Max(lat).Seconds(), steady)
	return tw.Flush()
}

// benchBacklog produces a backlog, consumes it with the baseline, then
// runs the stream over it from the earliest offset until the store has
// counted every event.
func benchBacklog(ctx context.Context, brokers []string, dir string, tally *tally, backlog, apps int, every time.Duration) (n int64, base, took time.Duration, err error) {
	prefix := kafkatest.Prefix("bench-a")
	if err := kafkatest.CreateTopics(ctx, brokers, prefix, 3); err != nil {
		return 0, 0, 0, err
	}
	cfg := gen.Config{Seed: 5, Start: time.Now().UTC().Truncate(24 * time.Hour), Days: 1, Events: backlog, Apps: apps, Punctual: true}
	cfg.EnsureDefaults()
	t0 := time.Now()
	if err := sendGen(ctx, brokers, prefix, cfg, 0, tally); err != nil {
		return 0, 0, 0, err
	}
	fmt.Printf("backlog: %d events produced in %.1fs\n", tally.valid.Load(), time.Since(t0).Seconds())

	baseStart := time.Now()
	n, err = consumeAll(ctx, brokers, prefix, tally.valid.Load())
	if err != nil {
		return 0, 0, 0, err
	}
	base = time.Since(baseStart)

	store := "sqlite:" + filepath.Join(dir, "a.db")
	st, err := serving.Open(ctx, store)
	if err != nil {
		return 0, 0, 0, err
	}
	defer st.Close()
	streamStart := time.Now()
	stop, err := runStream(brokers, prefix, store, kafkaio.StartEarliest, every)
	if err != nil {
		return 0, 0, 0, err
	}
	ok := waitCounted(ctx, st, tally, 10*time.Minute)
	took = time.Since(streamStart)
	stop()
	if !ok {
		return 0, 0, 0, fmt.Errorf("the stream did not count the backlog within 10 minutes")
	}

	return n, base, took, nil
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

// sendGen sends cfg live-stamped at rate (0: unlimited).
func sendGen(ctx context.Context, brokers []string, prefix string, cfg gen.Config, rate float64, then gen.Sink) error {
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		return err
	}
	defer p.Close()
	ks := gen.NewKafkaSink(ctx, p, rate, true, then)
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
func runStream(brokers []string, prefix, store string, start kafkaio.StartPosition, every time.Duration) (stop func(), err error) {
	p, s := beam.NewPipelineWithRoot()
	cfg := pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers, Start: start}, TopicPrefix: prefix, Store: store, Every: every}
	if err := pipelines.BuildStream(s, cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		if err := pipelines.RunStream(ctx, p); err != nil {
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
// of the tally, and reports whether they equal what was sent.
func counted(ctx context.Context, st serving.Store, t *tally) (int64, bool) {
	now := time.Now().UTC()
	var total int64
	all := true
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, apps := range t.byApp {
		for app, want := range apps {
			pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: k, AppID: app, Version: transforms.AllVersions,
				Gran: transforms.Day, From: now.AddDate(0, 0, -2), To: now.AddDate(0, 0, 1)})
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

func waitCounted(ctx context.Context, st serving.Store, t *tally, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, ok := counted(ctx, st, t); ok {
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
		pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: event.AppLoad, AppID: app, Version: transforms.AllVersions,
			Gran: transforms.Minute, From: at.Add(-time.Minute), To: at.Add(time.Minute)})
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
		genDone <- sendGen(ctx, brokers, prefix, cfg, rate, tally)
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
	return lat, waitCounted(ctx, st, tally, 60*time.Second), nil
}
