package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// startStream runs the speed layer unbounded in the background; stop
// cancels it, which drains it (launch.RunStream), and waits for it to
// end.
func startStream(t *testing.T, cfg pipelines.StreamConfig) (stop func()) {
	t.Helper()
	sr, err := launch.StartStream(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildStream(s, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- launch.RunStream(ctx, p, sr) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stream: %v", err)
			}
		case <-time.After(launch.DrainTimeout + time.Minute):
			t.Errorf("the stream did not stop within %v of cancel", launch.DrainTimeout+time.Minute)
		}
	}
}

// awaitReady produces a probe event every half second until the speed
// layer counts one: then the stream reads at the head of every topic (a
// stream starting at "latest" skips what was produced before it looked).
func awaitReady(t *testing.T, brokers []string, prefix string, st serving.Store) {
	t.Helper()
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	// An app id of this call's own: earlier runs' probes must not count.
	probeApp := fmt.Sprintf("lumen-probe-%d", time.Now().UnixNano())
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		now := time.Now()
		for _, k := range event.Kinds {
			e := event.Event{Kind: k, AppID: probeApp, AppVersion: "1", Platform: "android",
				DeviceID: []byte(fmt.Sprintf("probe-%d", i)), EventTime: now.UnixMilli(), ReceivedTime: now.UnixMilli()}
			if k.HasSignature() {
				e.Signature = "probe"
			}
			p.Produce(ctx, &e)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		ready := true
		for _, k := range event.Kinds {
			pts, err := st.Counts(ctx, serving.Speed, serving.CountQuery{Kind: k, AppID: probeApp, Version: aggregate.AllVersions,
				Gran: aggregate.Day, From: now.Add(-24 * time.Hour), To: now.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			ready = ready && len(pts) > 0
		}
		if ready {
			t.Logf("stream ready after %d probes", i+1)
			return
		}
	}
	t.Fatal("the stream counted no probe event within 2 minutes")
}

// TestStreamRestart: a stream reads live traffic (A) and counts it; it is
// stopped, traffic goes on (B), and it is restarted with the default start
// position. It resumes at the head: it counts the new traffic (C) and
// never B, which the next batch run counts, with A and C, exactly.
//
// The phases share minutes, hours and the day. The restarted stream starts
// its windows empty, and its rows (a new run) add to the first run's, so
// every speed bucket, minute, hour and day, is exactly A + C.
func TestStreamRestart(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	store := sqliteURL(t)
	st := openStore(t, store)
	raw := t.TempDir()
	cfg := pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers}, TopicPrefix: prefix, Store: store, Every: time.Second}

	stop := startStream(t, cfg)
	awaitReady(t, brokers, prefix, st)
	a := produceLive(t, brokers, prefix, livePhase(31), raw)
	awaitSpeed(t, st, []*gen.StreamTruth{a}, nil)
	stop()

	b := produceLive(t, brokers, prefix, livePhase(32), raw)

	stop = startStream(t, cfg)
	defer func() { stop() }()
	awaitReady(t, brokers, prefix, st)
	c := produceLive(t, brokers, prefix, livePhase(33), raw)
	awaitSpeed(t, st, []*gen.StreamTruth{a, c}, b)
	stop()
	stop = func() {}

	// The batch over what the archiver would have landed counts all three.
	asOf := time.Now().UTC().Truncate(24 * time.Hour)
	// Today has not ended: the run is partial, and exact for what landed.
	runBatch(t, "prism", pipelines.BatchConfig{Input: raw, Store: store, AsOf: asOf, WindowDays: 2, AllowPartialDay: true})
	all := sumTruths(a, b, c)
	var diffs []string
	n := 0
	for k, want := range all.Counts {
		if k.Gran == "minute" {
			continue
		}
		if pts := batchBucket(t, st, k); len(pts) != 1 || pts[0].Count != want {
			diffs = append(diffs, fmt.Sprintf("%v: batch %v, want %d", k, pts, want))
		}
		n++
	}
	reportDiffs(t, "batch after the restart vs truth (A+B+C)", diffs)
	t.Logf("A %d, B %d (missed by the speed layer), C %d events; batch: %d hour and day buckets exact", a.Valid, b.Valid, c.Valid, n)
}

// livePhase is one phase of live traffic in the restart tests: 4,000
// punctual events of three apps, re-stamped to now by produceLive.
func livePhase(seed uint64) gen.Config {
	return gen.Config{Seed: seed, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 1, Events: 4000, Apps: 3,
		Punctual: true, FilesPerHour: 2}
}

// produceLive sends cfg live (re-stamped to now) at 4,000 events/s,
// landing the same records under raw.
func produceLive(t *testing.T, brokers []string, prefix string, cfg gen.Config, raw string) *gen.StreamTruth {
	t.Helper()
	return produceNamed(t, brokers, prefix, cfg, true, 4000, raw, fmt.Sprintf("seed%d", cfg.Seed))
}

// awaitSpeed waits until every bucket of the truths in want and in missing
// reads, in the speed tables, the count of want exactly (so none of
// missing). It fails with the differences after a minute.
func awaitSpeed(t *testing.T, st serving.Store, want []*gen.StreamTruth, missing *gen.StreamTruth) {
	t.Helper()
	exp := sumTruths(want...)
	probe := sumTruths(append(want, missing)...)
	keys := gen.NewStreamTruth()
	for k, n := range probe.Counts {
		keys.Counts[k] = n
	}
	deadline := time.Now().Add(time.Minute)
	for {
		speed, _, _ := speedState(t, st, keys)
		var diffs []string
		for k := range keys.Counts {
			if speed[k] != exp.Counts[k] {
				diffs = append(diffs, fmt.Sprintf("%v: speed %d, want %d", k, speed[k], exp.Counts[k]))
			}
		}
		if len(diffs) == 0 {
			t.Logf("speed exact: %d minute, hour and day buckets, %d events", len(keys.Counts), exp.Valid)
			return
		}
		if time.Now().After(deadline) {
			reportDiffs(t, "speed vs truth", diffs)
			t.FailNow()
		}
		time.Sleep(time.Second)
	}
}

// sumTruths adds truths' counts (devices are not needed here).
func sumTruths(trs ...*gen.StreamTruth) *gen.StreamTruth {
	out := gen.NewStreamTruth()
	for _, tr := range trs {
		if tr == nil {
			continue
		}
		for k, n := range tr.Counts {
			out.Counts[k] += n
		}
		out.Valid += tr.Valid
	}
	return out
}

// TestStreamReplay: a stream counts live traffic (A) and stops; traffic
// goes on (B); an operator replays from the earliest offsets, over the day
// the first run already counted. The replay takes the first run over
// (launch.StartStream): the speed tables then count A and B once each,
// not A twice. A restart from the replay's committed offsets adds what
// follows (C), and nothing twice.
func TestStreamReplay(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	store := sqliteURL(t)
	st := openStore(t, store)
	raw := t.TempDir()
	group := "replay-" + prefix
	cfg := pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers, Group: group, CommitOffsets: true},
		TopicPrefix: prefix, Store: store, Every: time.Second}

	stop := startStream(t, cfg)
	awaitReady(t, brokers, prefix, st)
	a := produceLive(t, brokers, prefix, livePhase(41), raw)
	awaitSpeed(t, st, []*gen.StreamTruth{a}, nil)
	stop()

	b := produceLive(t, brokers, prefix, livePhase(42), raw)

	replay := cfg
	replay.Kafka.Start = kafkaio.StartEarliest
	stop = startStream(t, replay)
	defer func() { stop() }()
	awaitSpeed(t, st, []*gen.StreamTruth{a, b}, nil)
	stop()

	resume := cfg
	resume.Kafka.Start = kafkaio.StartCommitted
	stop = startStream(t, resume)
	awaitReady(t, brokers, prefix, st)
	c := produceLive(t, brokers, prefix, livePhase(43), raw)
	awaitSpeed(t, st, []*gen.StreamTruth{a, b, c}, nil)
	stop()
	stop = func() {}

	runs, err := st.StreamRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, r := range runs {
		states = append(states, fmt.Sprintf("superseded_by=%q drained=%v", r.SupersededBy, r.End != nil))
	}
	if len(runs) != 3 || runs[0].SupersededBy != runs[1].ID || runs[1].SupersededBy != "" || runs[2].SupersededBy != "" ||
		runs[0].End == nil || runs[1].End == nil || runs[2].End == nil {
		t.Errorf("stream runs %v; want the first superseded by the replay, and all three drained", states)
	}
	t.Logf("A %d, B %d, C %d events; runs: %v", a.Valid, b.Valid, c.Valid, states)
}
