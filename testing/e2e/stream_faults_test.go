package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// liveStream is a speed layer running unbounded in the background, which
// a test can ask whether it still runs.
type liveStream struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	ended  bool
	err    error
}

// launchStream runs the speed layer until stop; the test's cleanup stops
// it if the test does not.
func launchStream(t *testing.T, cfg pipelines.StreamConfig) *liveStream {
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
	ls := &liveStream{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { ls.done <- launch.RunStream(ctx, p, sr) }()
	t.Cleanup(ls.stop)
	return ls
}

// running fails the test if the stream has ended (by itself: it was not
// stopped).
func (ls *liveStream) running() {
	ls.t.Helper()
	if why := ls.gone(); why != "" {
		ls.t.Fatal(why)
	}
}

// gone says why the stream has ended by itself, or "" while it runs.
func (ls *liveStream) gone() string {
	if !ls.ended {
		select {
		case ls.err = <-ls.done:
			ls.ended = true
		default:
			return ""
		}
	}
	return fmt.Sprintf("the stream ended by itself: %v", ls.err)
}

// stop cancels the stream and waits for it to end, failing the test if it
// reports an error for the stop or does not stop within a minute.
func (ls *liveStream) stop() {
	ls.cancel()
	if ls.ended {
		return
	}
	select {
	case err := <-ls.done:
		ls.ended, ls.err = true, err
		if err != nil {
			ls.t.Errorf("stream: %v", err)
		}
	case <-time.After(time.Minute):
		ls.t.Error("the stream did not stop within a minute of cancel")
	}
}

// awaitSpeedRunning waits until check reports no differences, failing
// with them after 90 s, or at once if the stream ends meanwhile.
func awaitSpeedRunning(t *testing.T, ls *liveStream, check func() []string, what string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ls.running()
		diffs := check()
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			reportDiffs(t, what, diffs)
			t.FailNow()
		}
		time.Sleep(time.Second)
	}
}

// TestStreamOversizedDeadLetter: a producer sends a record far too big to
// be dead-lettered as it is (an invalid crash, no app id, with a 600 KB
// signature: its dead letter, payload plus detail, is 1.2 MB, over the
// broker's 1 MB), then ordinary traffic. The dead letter is truncated to
// fit and sent with its reason; every good event after it is counted,
// exactly as the generator's truth says; and the stream keeps running.
// (It used to fail the dead-letter bundle, and every one after it, which
// failed the job.)
func TestStreamOversizedDeadLetter(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	store := sqliteURL(t)
	st := openStore(t, store)
	ls := launchStream(t, pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers}, TopicPrefix: prefix, Store: store, Every: time.Second})
	awaitReady(t, brokers, prefix, st)

	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	huge := event.Event{Kind: event.Crash, AppVersion: "1", Platform: "ios", DeviceID: []byte("huge"),
		EventTime: now, ReceivedTime: now, Signature: strings.Repeat("s", 600_000)}
	p.Produce(context.Background(), &huge)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	tr := produceLive(t, brokers, prefix, gen.Config{Seed: 51, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 1,
		Events: 4000, Apps: 3, Punctual: true, FilesPerHour: 2}, t.TempDir())
	awaitSpeedRunning(t, ls, func() []string { return speedDiffs(t, st, tr) }, "speed after an oversized dead letter vs truth")
	if got := readDeadLetters(t, brokers, prefix, 1); fmt.Sprint(got) != "map[empty_app_id:1]" {
		t.Errorf("dead letters by reason = %v, want the oversized one, truncated, as empty_app_id", got)
	}
	ls.running()
	t.Logf("%d good events counted exactly after the oversized dead letter; the stream runs on", tr.Valid)
}

// speedDiffs lists the buckets of tr the speed layer does not count
// exactly, and every late count in tr's series: tr is all on time.
func speedDiffs(t *testing.T, st serving.Store, tr *gen.StreamTruth) []string {
	t.Helper()
	speed, late, _ := speedState(t, st, tr)
	var diffs []string
	for k, want := range tr.Counts {
		if speed[k] != want {
			diffs = append(diffs, fmt.Sprintf("%v: speed %d, want %d", k, speed[k], want))
		}
	}
	for k, n := range late {
		diffs = append(diffs, fmt.Sprintf("%v: late %d, want 0", k, n))
	}
	return diffs
}

// heldKinds is a Sink passing on the records of every kind but held's, and
// holding those back for later.
type heldKinds struct {
	next gen.Sink
	kind event.Kind
	held []gen.Record
}

func (h *heldKinds) Record(r *gen.Record) error {
	if r.Event.Kind == h.kind {
		c := *r
		c.Event = r.Event.Clone()
		h.held = append(h.held, c)
		return nil
	}
	return h.next.Record(r)
}

func (h *heldKinds) DayDone(d time.Time) error { return h.next.DayDone(d) }

// TestStreamMissingTopic is a fresh install where nobody has produced a
// handled exception yet, so that kind has no topic: the stream reads the
// other two kinds and counts them exactly, and runs on well past the
// missing-topic timeout. Once the topic is created and its traffic sent,
// the stream finds it and counts it too, exactly as the generator's truth
// says. (It used to fail the whole job once the topic had been missing for
// the timeout.)
func TestStreamMissingTopic(t *testing.T) {
	brokers, prefix := kafkatest.ClusterWithout(t, 3, event.HandledException)
	store := sqliteURL(t)
	st := openStore(t, store)
	const timeout = 2 * time.Second
	// From the earliest offsets: no probes to wait for the head with (a
	// probe of each kind would create the missing topic).
	started := time.Now()
	ls := launchStream(t, pipelines.StreamConfig{TopicPrefix: prefix, Store: store, Every: time.Second,
		Kafka: kafkaio.ReadConfig{Brokers: brokers, Start: kafkaio.StartEarliest, DiscoveryInterval: 300 * time.Millisecond,
			MissingTopicTimeout: timeout}})

	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := gen.Config{Seed: 61, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 1, Events: 6000, Apps: 3, Punctual: true}
	first := gen.NewStreamTruth()
	ks := gen.NewKafkaSink(context.Background(), p, 4000, true, first)
	held := &heldKinds{next: ks, kind: event.HandledException}
	if err := gen.Generate(cfg, held); err != nil {
		t.Fatal(err)
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	if len(held.held) == 0 || first.Valid == 0 {
		t.Fatalf("the generator made %d handled exceptions and %d other events: want both", len(held.held), first.Valid)
	}
	awaitSpeedRunning(t, ls, func() []string { return speedDiffs(t, st, first) }, "app loads and crashes, the third topic missing")
	// Well past the timeout, the stream still runs.
	for time.Since(started) < 5*timeout {
		ls.running()
		time.Sleep(100 * time.Millisecond)
	}
	ls.running()
	t.Logf("%d app loads and crashes counted exactly, %v after the start, with no handled-exception topic", first.Valid, time.Since(started).Round(time.Second))

	if err := kafkatest.CreateTopic(context.Background(), brokers, 3, kafkaio.Topic(prefix, event.HandledException)); err != nil {
		t.Fatal(err)
	}
	second := gen.NewStreamTruth()
	ks = gen.NewKafkaSink(context.Background(), p, 4000, true, second)
	for i := range held.held {
		if err := ks.Record(&held.held[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	all := sumTruths(first, second)
	awaitSpeedRunning(t, ls, func() []string { return speedDiffs(t, st, all) }, "every kind, once the topic exists")
	t.Logf("the new topic's %d handled exceptions counted exactly too", second.Valid)
}

// TestStreamNoTopicFailsFast: with a prefix no topic has (a typo), the
// stream fails within the missing-topic timeout, with one line naming the
// prefix.
func TestStreamNoTopicFailsFast(t *testing.T) {
	brokers, _ := kafkatest.Cluster(t, 1)
	typo := kafkatest.Prefix("typo")
	ls := launchStream(t, pipelines.StreamConfig{TopicPrefix: typo, Store: sqliteURL(t),
		Kafka: kafkaio.ReadConfig{Brokers: brokers, DiscoveryInterval: 300 * time.Millisecond, MissingTopicTimeout: 2 * time.Second}})
	select {
	case err := <-ls.done:
		ls.ended = true
		want := fmt.Sprintf("kafkaio: no topic with prefix %q exists", typo)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("the stream ended with %v, want %q", err, want)
		}
		t.Logf("failed with: %s", firstKafkaLine(err))
	case <-time.After(time.Minute):
		t.Fatal("the stream over a prefix with no topic still runs after a minute")
	}
}

// firstKafkaLine is the line of a job's error that names the cause.
func firstKafkaLine(err error) string {
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.Contains(l, "kafkaio:") {
			return strings.TrimSpace(l)
		}
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}
