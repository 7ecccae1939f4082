package kafkaio

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

const prefix = "lumen."

func cluster(t *testing.T, partitions int32) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions,
		Topic(prefix, event.AppLoad), Topic(prefix, event.Crash), Topic(prefix, event.HandledException)), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func ev(k event.Kind, i int, at time.Time) event.Event {
	e := event.Event{Kind: k, AppID: fmt.Sprint("app", i%3), AppVersion: "1.0", Platform: "ios",
		DeviceID: []byte(fmt.Sprintf("device-%04d", i)), EventTime: at.UnixMilli(), ReceivedTime: at.UnixMilli() + 50}
	if k.HasSignature() {
		e.Signature = "sig"
	}
	return e
}

// produceTo writes events to one partition, in order, synchronously.
func produceTo(t *testing.T, brokers []string, partition int32, evs []event.Event) {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range evs {
		r := &kgo.Record{Topic: Topic(prefix, evs[i].Kind), Partition: partition, Key: evs[i].DeviceID,
			Value: event.AppendSingle(nil, &evs[i]), Timestamp: time.UnixMilli(evs[i].ReceivedTime)}
		if err := c.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func newReadFn(t *testing.T, brokers []string, cfg ReadConfig) *readFn {
	t.Helper()
	cfg.Brokers = brokers
	cfg.Topics = []string{Topic(prefix, event.AppLoad)}
	cfg.EnsureDefaults()
	f := &readFn{reader: reader{kafkaFn: kafkaFn{Brokers: brokers}, Cfg: cfg, Prefix: prefix}}
	if err := f.Setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Teardown)
	return f
}

type collected struct {
	events []event.Event
	times  []int64
	dead   []deadletter.Record
	late   []string
}

// process runs one ProcessElement call on a restriction, as a runner would.
func process(t *testing.T, f *readFn, tp TopicPartition, r offsetrange.Restriction, we *watermarkEstimator, c *collected) (sdf.ProcessContinuation, *sdf.LockRTracker) {
	t.Helper()
	rt := f.CreateTracker(r)
	pc, err := f.ProcessElement(context.Background(), we, rt, tp,
		func(ts beam.EventTime, e event.Event) {
			c.events = append(c.events, e)
			c.times = append(c.times, int64(ts))
		},
		func(d deadletter.Record) { c.dead = append(c.dead, d) },
		func(_ beam.EventTime, id string, _ event.Event) { c.late = append(c.late, id) })
	if err != nil {
		t.Fatal(err)
	}
	return pc, rt
}

func TestStartPositions(t *testing.T) {
	_, brokers := cluster(t, 2)
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad), Partition: 1}
	var evs []event.Event
	for i := 0; i < 10; i++ {
		e := ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Minute))
		e.ReceivedTime = t0.Add(time.Duration(i) * time.Minute).UnixMilli() // the record timestamp
		evs = append(evs, e)
	}
	produceTo(t, brokers, 1, evs)
	ctx := context.Background()
	admin := kadm.NewClient(kgoClient(t, brokers))
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: tp.Topic, Partition: 1, At: 4, LeaderEpoch: -1})
	if _, err := admin.CommitOffsets(ctx, "lumen-stream", os); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cfg  ReadConfig
		want int64
	}{
		{ReadConfig{Start: StartLatest}, 10},
		{ReadConfig{Start: StartEarliest}, 0},
		{ReadConfig{Start: StartCommitted, Group: "lumen-stream"}, 4},
		{ReadConfig{Start: StartCommitted, Group: "never-committed"}, 0},
		{ReadConfig{Start: StartAtTime, StartTimeMs: t0.Add(6*time.Minute + time.Second).UnixMilli()}, 7},
	}
	for _, c := range cases {
		r, err := newReadFn(t, brokers, c.cfg).CreateInitialRestriction(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		if r.Start != c.want || r.End != unbounded {
			t.Errorf("start %s: restriction %+v, want start %d", c.cfg.Start, r, c.want)
		}
	}
	// A partition discovered after reading began is read from its start.
	if r, _ := newReadFn(t, brokers, ReadConfig{Start: StartLatest}).CreateInitialRestriction(ctx, TopicPartition{Topic: tp.Topic, Partition: 1, New: true}); r.Start != 0 {
		t.Errorf("new partition starts at %d, want 0", r.Start)
	}
	// Bounded: to the end offsets, or to an end time.
	if r, _ := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, Bounded: true}).CreateInitialRestriction(ctx, tp); r.End != 10 {
		t.Errorf("bounded end %d, want 10", r.End)
	}
	if r, _ := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, Bounded: true, EndTimeMs: t0.Add(3 * time.Minute).UnixMilli()}).CreateInitialRestriction(ctx, tp); r.End != 3 {
		t.Errorf("bounded by time: end %d, want 3", r.End)
	}
	if err := (&ReadConfig{Brokers: brokers, Topics: []string{"x"}, Start: StartCommitted}).Validate(); err == nil {
		t.Error("committed without a group validated")
	}
}

func kgoClient(t *testing.T, brokers []string) *kgo.Client {
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// A reader checkpoints (ProcessContinuation) and the residual resumes
// exactly where it stopped: every record once, in order.
func TestSplitAndResume(t *testing.T) {
	_, brokers := cluster(t, 1)
	var evs []event.Event
	for i := 0; i < 250; i++ {
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, MaxBundleRecords: 60})
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	r, _ := f.CreateInitialRestriction(context.Background(), tp)
	we := f.CreateWatermarkEstimator(f.InitialWatermarkEstimatorState(0, r, tp))
	c := &collected{}
	checkpoints := 0
	for len(c.events) < 250 && checkpoints < 50 {
		pc, rt := process(t, f, tp, r, we, c)
		if !pc.ShouldResume() {
			t.Fatalf("unbounded read stopped")
		}
		_, residual, err := rt.TrySplit(0)
		if err != nil || residual == nil {
			t.Fatalf("checkpoint: %v %v", residual, err)
		}
		r = residual.(offsetrange.Restriction)
		we = f.CreateWatermarkEstimator(f.WatermarkEstimatorState(we)) // state carried across
		checkpoints++
	}
	if checkpoints < 4 {
		t.Errorf("%d checkpoints for 250 records at 60 per bundle", checkpoints)
	}
	if !reflect.DeepEqual(c.events, evs) {
		t.Fatalf("read %d events, want the 250 produced, once, in order", len(c.events))
	}
	if r.Start != 250 {
		t.Errorf("resume position %d, want 250", r.Start)
	}
	// The watermark is the newest event time minus the bound.
	if got, want := we.own().UnixMilli(), evs[249].EventTime-(2*time.Minute).Milliseconds(); got < want {
		t.Errorf("watermark %d, want at least %d", got, want)
	}
}

// Undecodable messages, kind mismatches and invalid events are dead
// letters with their position and reason, and reading goes on.
func TestDeadLetters(t *testing.T) {
	_, brokers := cluster(t, 1)
	p, err := NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	topic := Topic(prefix, event.AppLoad)
	good := ev(event.AppLoad, 1, t0)
	crash := ev(event.Crash, 2, t0)
	bad := ev(event.AppLoad, 3, t0)
	bad.AppID = ""
	p.Produce(ctx, &good)
	p.ProduceRaw(ctx, topic, nil, []byte("not avro at all"), t0)
	p.ProduceRaw(ctx, topic, nil, event.AppendSingle(nil, &crash), t0)
	p.ProduceRaw(ctx, topic, nil, event.AppendSingle(nil, &bad), t0)
	p.Produce(ctx, &good)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, Bounded: true})
	tp := TopicPartition{Topic: topic}
	r, _ := f.CreateInitialRestriction(ctx, tp)
	c := &collected{}
	pc, _ := process(t, f, tp, r, f.CreateWatermarkEstimator(initialWatermarkState("test", TopicPartition{})), c)
	if pc.ShouldResume() {
		t.Error("bounded read did not stop")
	}
	var reasons []string
	for _, d := range c.dead {
		reasons = append(reasons, fmt.Sprintf("%d:%s", d.Offset, d.Reason))
		if d.Source != topic+"/0" || len(d.Payload) == 0 || d.Pipeline != "stream" {
			t.Errorf("dead letter lacks context: %+v", d)
		}
	}
	if want := []string{"1:undecodable", "2:kind_mismatch", "3:empty_app_id"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("dead letters %v, want %v", reasons, want)
	}
	if len(c.events) != 2 {
		t.Errorf("%d good events, want 2", len(c.events))
	}
}

// Partitions are discovered as they appear; later ones are marked New.
func TestDiscovery(t *testing.T) {
	_, brokers := cluster(t, 2)
	topic := Topic(prefix, event.Crash)
	d := &discoverFn{kafkaFn: kafkaFn{Brokers: brokers}, IntervalMs: 100}
	if err := d.Setup(); err != nil {
		t.Fatal(err)
	}
	defer d.Teardown()
	ctx := context.Background()
	r, _ := d.CreateInitialRestriction(ctx, topic)
	var got []TopicPartition
	emit := func(_ beam.EventTime, tp TopicPartition) { got = append(got, tp) }
	rt := d.CreateTracker(r)
	if pc, _ := d.ProcessElement(ctx, nil, rt, topic, emit); !pc.ShouldResume() {
		t.Fatal("discovery stopped")
	}
	_, residual, _ := rt.TrySplit(0)
	if _, err := kadm.NewClient(kgoClient(t, brokers)).CreatePartitions(ctx, 1, topic); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(d.IntervalMs) * time.Millisecond) // the runner resumes after the interval
	rt = d.CreateTracker(residual.(offsetrange.Restriction))
	d.ProcessElement(ctx, nil, rt, topic, emit)
	want := []TopicPartition{{topic, 0, false}, {topic, 1, false}, {topic, 2, true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("discovered %v, want %v", got, want)
	}
	// Bounded discovery emits what exists and stops.
	b := &discoverFn{kafkaFn: kafkaFn{Brokers: brokers}, Bounded: true}
	b.Setup()
	defer b.Teardown()
	r, _ = b.CreateInitialRestriction(ctx, topic)
	got = nil
	if pc, _ := b.ProcessElement(ctx, nil, b.CreateTracker(r), topic, emit); pc.ShouldResume() || len(got) != 3 {
		t.Errorf("bounded discovery: resume=%v, %v", pc.ShouldResume(), got)
	}
}

// A caught-up partition is idle: its watermark follows the clock, so it
// does not hold the pipeline's watermark at the start of time.
func TestIdlePartitionWatermark(t *testing.T) {
	_, brokers := cluster(t, 2)
	produceTo(t, brokers, 0, []event.Event{ev(event.AppLoad, 1, t0), ev(event.AppLoad, 2, t0.Add(time.Hour))})
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest})
	ctx := context.Background()
	busy := TopicPartition{Topic: Topic(prefix, event.AppLoad), Partition: 0}
	idle := TopicPartition{Topic: Topic(prefix, event.AppLoad), Partition: 1}
	wBusy := f.CreateWatermarkEstimator(initialWatermarkState("test", TopicPartition{}))
	wIdle := f.CreateWatermarkEstimator(initialWatermarkState("test", TopicPartition{}))
	r, _ := f.CreateInitialRestriction(ctx, busy)
	process(t, f, busy, r, wBusy, &collected{})
	r, _ = f.CreateInitialRestriction(ctx, idle)
	pc, _ := process(t, f, idle, r, wIdle, &collected{})
	if !pc.ShouldResume() {
		t.Fatal("idle partition stopped")
	}
	if got := wBusy.own(); !got.Equal(t0.Add(time.Hour - 2*time.Minute)) {
		t.Errorf("busy partition watermark %v", got)
	}
	if got := wIdle.own(); time.Since(got) > 3*time.Minute || time.Since(got) < 2*time.Minute-time.Second {
		t.Errorf("idle partition watermark %v, want about now - 2m", got)
	}
}

// A replay of history whose fetches are slow to come back: the first polls
// of a bundle return nothing while the partition's end offset is still
// unknown. That is not being caught up, so the watermark must stay with
// the events (weeks old) until they are all read, and none is late; once
// the reader is at the end, it idles and the watermark follows the clock.
func TestSlowFetchIsNotIdle(t *testing.T) {
	c, brokers := cluster(t, 1)
	old := time.Now().UTC().Add(-21 * 24 * time.Hour).Truncate(time.Hour)
	var evs []event.Event
	for i := 0; i < 300; i++ {
		evs = append(evs, ev(event.AppLoad, i, old.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	// Every fetch answers 300 ms late, after the reader's first 100 ms poll.
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		time.Sleep(300 * time.Millisecond)
		return nil, nil, false
	})
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, MaxBundleRecords: 100, MaxBundleTime: 2 * time.Second})
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	r, _ := f.CreateInitialRestriction(context.Background(), tp)
	we := f.CreateWatermarkEstimator(f.InitialWatermarkEstimatorState(0, r, tp))
	got := &collected{}
	for bundles := 0; len(got.events) < len(evs); bundles++ {
		if bundles == 20 {
			t.Fatalf("read %d of %d events in 20 bundles", len(got.events), len(evs))
		}
		_, rt := process(t, f, tp, r, we, got)
		if wm := we.own(); wm.After(old.Add(time.Hour)) {
			t.Fatalf("after %d events the watermark is %v: a partition still holding weeks-old events went idle", len(got.events), wm)
		}
		_, residual, _ := rt.TrySplit(0)
		r = residual.(offsetrange.Restriction)
		we = f.CreateWatermarkEstimator(f.WatermarkEstimatorState(we))
	}
	if len(got.late) != 0 || !reflect.DeepEqual(got.events, evs) {
		t.Errorf("read %d events (%d late), want the %d produced in order, none late", len(got.events), len(got.late), len(evs))
	}
	// Now at the end: an empty poll against the known end offset is idle.
	if pc, _ := process(t, f, tp, r, we, got); !pc.ShouldResume() || time.Since(we.own()) > 3*time.Minute {
		t.Errorf("caught-up partition: resume %v, watermark %v, want about now - 2m", pc.ShouldResume(), we.own())
	}
}

// A partition that never had a record is caught up from the start: its end
// offset (0) comes from the broker, since no fetch reports it.
func TestEmptyPartitionIdles(t *testing.T) {
	_, brokers := cluster(t, 1)
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest})
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	r, _ := f.CreateInitialRestriction(context.Background(), tp)
	we := f.CreateWatermarkEstimator(f.InitialWatermarkEstimatorState(0, r, tp))
	pc, _ := process(t, f, tp, r, we, &collected{})
	if !pc.ShouldResume() || we.state.EndOffset != 0 || time.Since(we.own()) > 3*time.Minute {
		t.Errorf("empty partition: resume %v, end offset %d, watermark %v; want idle at about now - 2m", pc.ShouldResume(), we.state.EndOffset, we.own())
	}
}

// With CommitOffsets, a bundle commits where its restriction starts: what
// the bundles before it read, which the runner persisted before it could
// resume the restriction. Nothing read by a bundle is committed before
// the next one starts.
func TestCommitsWhatWasPersisted(t *testing.T) {
	_, brokers := cluster(t, 1)
	var evs []event.Event
	for i := 0; i < 150; i++ {
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	const group = "lumen-commit-test"
	f := newReadFn(t, brokers, ReadConfig{Start: StartCommitted, Group: group, CommitOffsets: true, MaxBundleRecords: 60})
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	admin := kadm.NewClient(kgoClient(t, brokers))
	committed := func() int64 {
		os, err := admin.FetchOffsets(context.Background(), group)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := os.Lookup(tp.Topic, tp.Partition)
		if !ok {
			return -1
		}
		return o.At
	}
	r, _ := f.CreateInitialRestriction(context.Background(), tp)
	we := f.CreateWatermarkEstimator(f.InitialWatermarkEstimatorState(0, r, tp))
	var want []int64
	var seen []int64
	for i := 0; i < 3; i++ {
		want = append(want, r.Start)
		_, rt := process(t, f, tp, r, we, &collected{})
		seen = append(seen, committed())
		_, residual, _ := rt.TrySplit(0)
		r = residual.(offsetrange.Restriction)
		we = f.CreateWatermarkEstimator(f.WatermarkEstimatorState(we))
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("committed after each bundle: %v, want each bundle's start %v", seen, want)
	}
	// A restart from the committed offset reads again only the last bundle.
	if r2, _ := newReadFn(t, brokers, ReadConfig{Start: StartCommitted, Group: group}).CreateInitialRestriction(context.Background(), tp); r2.Start != 120 {
		t.Errorf("restart at %d, want 120", r2.Start)
	}
}

// A topic missing while another of the Read's exists is looked for at
// every interval, for as long as it takes, and read from its start once it
// is created; only when none of the Read's topics exists does discovery
// fail, naming the prefix.
func TestMissingTopicIsNotFatal(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, Topic(prefix, event.AppLoad)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	clock := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	ctx := context.Background()
	missing := Topic(prefix, event.HandledException)
	d := &discoverFn{kafkaFn: kafkaFn{Brokers: brokers}, IntervalMs: 100, MissingTimeoutMs: time.Minute.Milliseconds(),
		Topics: []string{Topic(prefix, event.AppLoad), missing}, Prefix: prefix, now: now}
	if err := d.Setup(); err != nil {
		t.Fatal(err)
	}
	defer d.Teardown()
	var got []TopicPartition
	emit := func(_ beam.EventTime, tp TopicPartition) { got = append(got, tp) }
	r, _ := d.CreateInitialRestriction(ctx, missing)
	rt := d.CreateTracker(r)
	for look := 0; look < 3; look++ { // an hour apart: far past the timeout
		pc, err := d.ProcessElement(ctx, nil, rt, missing, emit)
		if err != nil || !pc.ShouldResume() {
			t.Fatalf("look %d at a missing topic, another existing: resume=%v, %v; want to look again", look, pc.ShouldResume(), err)
		}
		_, residual, _ := rt.TrySplit(0)
		rt = d.CreateTracker(residual.(offsetrange.Restriction))
		clock = clock.Add(time.Hour)
	}
	if _, err := kadm.NewClient(kgoClient(t, brokers)).CreateTopic(ctx, 2, 1, nil, missing); err != nil {
		t.Fatal(err)
	}
	// The client answers metadata from a cache for 50 ms: look until the
	// topic shows, as the runner would every interval.
	waitFor(t, 10*time.Second, "the created topic's partitions", func() bool {
		if _, err := d.ProcessElement(ctx, nil, rt, missing, emit); err != nil {
			t.Fatal(err)
		}
		return len(got) > 0
	})
	if want := []TopicPartition{{missing, 0, true}, {missing, 1, true}}; !reflect.DeepEqual(got, want) {
		t.Errorf("discovered %v once the topic exists, want %v (read from the start)", got, want)
	}

	// No topic of the prefix: fails once the timeout has passed, not before.
	none := &discoverFn{kafkaFn: kafkaFn{Brokers: brokers}, IntervalMs: 100, MissingTimeoutMs: time.Minute.Milliseconds(),
		Topics: []string{"typo.app_load", "typo.crash"}, Prefix: "typo.", now: now}
	none.Setup()
	defer none.Teardown()
	r, _ = none.CreateInitialRestriction(ctx, "typo.crash")
	if _, err := none.ProcessElement(ctx, nil, none.CreateTracker(r), "typo.crash", emit); err != nil {
		t.Fatalf("first look failed: %v", err)
	}
	clock = clock.Add(time.Minute)
	_, err = none.ProcessElement(ctx, nil, none.CreateTracker(offsetrange.Restriction{Start: 0, End: unbounded}), "typo.crash", emit)
	if err == nil || !strings.Contains(err.Error(), `no topic with prefix "typo." exists`) {
		t.Errorf("no topic of the prefix, after the timeout: %v, want a failure naming the prefix", err)
	}
}

// A record stamped in 2090 (a producer's clock, or microseconds sent for
// milliseconds) is a dead letter with reason future_time, and the on-time
// events after it on the same partition are all events, none late: the
// future record does not move the partition's watermark, which stays
// below the clock plus MaxFuture.
func TestFutureRecordIsDeadLetter(t *testing.T) {
	_, brokers := cluster(t, 1)
	now := time.Now()
	future := ev(event.AppLoad, 0, time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC))
	evs := []event.Event{future}
	for i := 1; i <= 10; i++ {
		evs = append(evs, ev(event.AppLoad, i, now.Add(time.Duration(i-20)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	f := newReadFn(t, brokers, ReadConfig{Start: StartEarliest, Bounded: true, LateHorizon: 24 * time.Hour})
	ctx := context.Background()
	tp := TopicPartition{Topic: Topic(prefix, event.AppLoad)}
	r, _ := f.CreateInitialRestriction(ctx, tp)
	c := &collected{}
	we := f.CreateWatermarkEstimator(initialWatermarkState("test-future", tp))
	process(t, f, tp, r, we, c)
	if len(c.dead) != 1 || c.dead[0].Reason != string(event.ReasonFutureTime) || c.dead[0].Offset != 0 {
		t.Errorf("dead letters %+v, want the 2090 record's, future_time", c.dead)
	}
	if len(c.events) != 10 || len(c.late) != 0 {
		t.Errorf("%d events and %d late after the future record, want 10 and 0", len(c.events), len(c.late))
	}
	if limit := time.Now().Add(event.DefaultMaxFuture); we.own().After(limit) {
		t.Errorf("watermark %v, past the clock plus max_future %v", we.own().UTC(), limit.UTC())
	}
}
