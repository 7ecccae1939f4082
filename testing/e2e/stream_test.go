package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// produce generates cfg onto Kafka in arrival order and returns the truth
// of what was sent; files, if not "", also receives the records in the raw
// layout (what the archiver would land) for a batch run over them.
func produce(t *testing.T, brokers []string, prefix string, cfg gen.Config, live bool, rate float64, files string) *gen.StreamTruth {
	t.Helper()
	return produceNamed(t, brokers, prefix, cfg, live, rate, files, "part")
}

// produceNamed is produce with the raw files' name prefix.
func produceNamed(t *testing.T, brokers []string, prefix string, cfg gen.Config, live bool, rate float64, files, name string) *gen.StreamTruth {
	t.Helper()
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tr := gen.NewStreamTruth()
	var then gen.Sink = tr
	var fs *gen.FileSink
	if files != "" {
		fs = gen.NewFileSink(files, cfg)
		fs.Name = name
		then = gen.Tee{tr, fs}
	}
	ks := gen.NewKafkaSink(context.Background(), p, rate, live, then)
	start := time.Now()
	if err := gen.Generate(cfg, ks); err != nil {
		t.Fatal(err)
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	if fs != nil {
		if err := fs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("produced %d records (%d valid) in %v", ks.Sent, tr.Valid, time.Since(start).Round(time.Millisecond))
	return tr
}

// runStreamBounded runs the speed layer over everything on the topics.
func runStreamBounded(t *testing.T, cfg pipelines.StreamConfig) {
	t.Helper()
	cfg.Kafka.Bounded = true
	cfg.Kafka.Start = kafkaio.StartEarliest
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildStream(s, cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	launch.UseStreamExperiments() // as launch.RunStream does
	if _, err := prism.Execute(ctx, p); err != nil {
		t.Fatalf("stream: %v", err)
	}
	t.Logf("stream (bounded) ran in %v", time.Since(start).Round(time.Millisecond))
}

// speedState reads, through the Store interface, the speed counts and late
// counts of every series of the truth at every granularity.
func speedState(t *testing.T, st serving.Store, tr *gen.StreamTruth) (speed, late map[gen.StreamKey]int64, users map[gen.StreamKey]aggregate.UserRow) {
	t.Helper()
	ctx := context.Background()
	type series struct {
		k        event.Kind
		app, v   string
		from, to time.Time
	}
	ss := map[[3]string]*series{}
	for k := range tr.Counts {
		id := [3]string{k.Kind.String(), k.App, k.Version}
		s := ss[id]
		if s == nil {
			s = &series{k: k.Kind, app: k.App, v: k.Version, from: k.Bucket, to: k.Bucket}
			ss[id] = s
		}
		if k.Bucket.Before(s.from) {
			s.from = k.Bucket
		}
		if k.Bucket.After(s.to) {
			s.to = k.Bucket
		}
	}
	speed, late = map[gen.StreamKey]int64{}, map[gen.StreamKey]int64{}
	users = map[gen.StreamKey]aggregate.UserRow{}
	grans := map[string]aggregate.Granularity{"minute": aggregate.Minute, "hour": aggregate.Hour, "day": aggregate.Day}
	for _, s := range ss {
		for name, g := range grans {
			q := serving.CountQuery{Kind: s.k, AppID: s.app, Version: s.v, Gran: g, From: s.from.AddDate(0, 0, -1), To: s.to.AddDate(0, 0, 2)}
			pts, err := st.Counts(ctx, serving.Speed, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pts {
				speed[gen.StreamKey{Kind: s.k, App: s.app, Version: s.v, Gran: name, Bucket: p.Bucket.UTC()}] = p.Count
			}
			if g == aggregate.Day {
				continue
			}
			if pts, err = st.Late(ctx, q); err != nil {
				t.Fatal(err)
			}
			for _, p := range pts {
				late[gen.StreamKey{Kind: s.k, App: s.app, Version: s.v, Gran: name, Bucket: p.Bucket.UTC()}] = p.Count
			}
		}
		rows, err := st.Users(ctx, serving.Speed, serving.UserQuery{Kind: s.k, AppID: s.app, Version: s.v, From: s.from.AddDate(0, 0, -1), To: s.to.AddDate(0, 0, 2)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			users[gen.StreamKey{Kind: s.k, App: s.app, Version: s.v, Gran: "day", Bucket: r.DayTime()}] = r
		}
	}
	return speed, late, users
}

func reportDiffs(t *testing.T, what string, diffs []string) {
	t.Helper()
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %d buckets differ, e.g.\n%s", what, len(diffs), joinFirst(diffs, 12))
	}
}

func joinFirst(s []string, n int) string {
	var b bytes.Buffer
	for i, l := range s {
		if i == n {
			fmt.Fprintf(&b, "… and %d more", len(s)-n)
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// TestStreamEndToEnd: generated traffic with offline devices reporting
// hours to days late, stragglers, skewed clocks and damaged records goes
// onto Kafka (with undecodable messages mixed in), through the speed layer
// on prism, into the store. Every minute and hour: speed count + late count
// = the truth, exactly; days count what was on time. Damaged records (bad
// signatures among them) and undecodable messages are dead-lettered with
// their reason and cost no good data.
func TestStreamEndToEnd(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	cfg := gen.Config{Seed: 7, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2, Events: 60_000, Apps: 8,
		OfflineShare: 0.1, SkewShare: 0.02, InvalidShare: 0.005, BadSignatures: true}
	tr := produce(t, brokers, prefix, cfg, false, 0, "")
	requireSignatureDefects(t, tr.Invalid)
	// Undecodable messages and a record on the wrong kind's topic.
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.AppLoad), nil, []byte(fmt.Sprintf("not avro %d", i)), time.Now())
	}
	crash := event.Event{Kind: event.Crash, AppID: "x", AppVersion: "1", Platform: "ios", DeviceID: []byte{1}, EventTime: cfg.Start.UnixMilli(), ReceivedTime: cfg.Start.UnixMilli(), Signature: "s"}
	p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.HandledException), nil, event.AppendSingle(nil, &crash), time.Now())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	store := sqliteURL(t)
	runStreamBounded(t, pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers}, TopicPrefix: prefix, Store: store})
	st := openStore(t, store)
	checkSpeedAgainstTruth(t, st, tr)

	// Dead letters: every damaged record by its reason, the undecodable
	// messages and the misplaced record.
	want := map[string]int64{"undecodable": 5, "kind_mismatch": 1}
	for r, n := range tr.Invalid {
		want[r] += n
	}
	got := readDeadLetters(t, brokers, prefix, sum(want))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters by reason = %v, want %v", got, want)
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// readDeadLetters reads n dead letters from the dead-letter topic and counts
// them by reason (decoding them as any consumer would).
func readDeadLetters(t *testing.T, brokers []string, prefix string, n int64) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(kafkaio.DeadLetterTopic(prefix)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec, err := goavro.NewCodec(deadletter.Schema)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var seen int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for seen < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if len(r.Value) < 10 || r.Value[0] != 0xC3 || r.Value[1] != 0x01 {
				t.Errorf("dead letter at offset %d is not single-object encoded", r.Offset)
				return
			}
			native, _, err := codec.NativeFromBinary(r.Value[10:])
			if err != nil {
				t.Errorf("dead letter at offset %d: %v", r.Offset, err)
				return
			}
			d, err := deadletter.FromNative(native)
			if err != nil {
				t.Errorf("dead letter at offset %d: %v", r.Offset, err)
				return
			}
			got[d.Reason]++
		})
	}
	return got
}

// TestStreamSharedTransforms: with no late data, the speed layer equals the
// truth exactly at every granularity, and the same events through the batch
// layer give identical hour and day counts and byte-identical merged day
// sketches: the two layers share their transforms.
func TestStreamSharedTransforms(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	cfg := gen.Config{Seed: 11, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2, WindowDays: 2, Events: 40_000, Apps: 6,
		SkewShare: 0.02, Punctual: true, FilesPerHour: 6}
	raw := t.TempDir()
	tr := produce(t, brokers, prefix, cfg, false, 0, raw)

	store := sqliteURL(t)
	runStreamBounded(t, pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers}, TopicPrefix: prefix, Store: store})
	st := openStore(t, store)
	speed, late, users := speedState(t, st, tr)
	var diffs []string
	for k, want := range tr.Counts {
		if speed[k] != want {
			diffs = append(diffs, fmt.Sprintf("%v: speed %d, want %d", k, speed[k], want))
		}
	}
	for k, n := range late {
		diffs = append(diffs, fmt.Sprintf("%v: late %d, want none", k, n))
	}
	reportDiffs(t, "speed vs truth (punctual)", diffs)
	for k, set := range tr.Devices {
		r, ok := users[k]
		if !ok {
			t.Errorf("%v: no speed sketch", k)
			continue
		}
		// HLL++ at p=14 is exact while sparse (here: a few thousand).
		if r.Estimate != int64(len(set)) {
			t.Errorf("%v: estimate %d, exact %d", k, r.Estimate, len(set))
		}
	}

	// The batch over the same records.
	runBatch(t, "prism", pipelines.BatchConfig{Input: raw, Store: store, AsOf: cfg.AsOf(), WindowDays: cfg.WindowDays})
	ctx := context.Background()
	diffs = nil
	sameSketches := 0
	for k := range tr.Counts {
		if k.Gran == "minute" {
			continue
		}
		pts := batchBucket(t, st, k)
		if len(pts) != 1 || pts[0].Count != speed[k] {
			diffs = append(diffs, fmt.Sprintf("%v: batch %v, speed %d", k, pts, speed[k]))
		}
		if k.Gran != "day" {
			continue
		}
		rows, err := st.Users(ctx, serving.Batch, serving.UserQuery{Kind: k.Kind, AppID: k.App, Version: k.Version, From: k.Bucket, To: k.Bucket})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || !bytes.Equal(rows[0].Sketch, users[k].Sketch) {
			diffs = append(diffs, fmt.Sprintf("%v: batch and speed sketches differ", k))
		} else {
			sameSketches++
		}
	}
	reportDiffs(t, "batch vs speed", diffs)
	t.Logf("%d hour and day buckets agree; %d day sketches byte-identical", len(tr.Counts), sameSketches)
}

// batchBucket reads the batch rows of one hour or day bucket.
func batchBucket(t *testing.T, st serving.Store, k gen.StreamKey) []serving.CountPoint {
	t.Helper()
	g := aggregate.Hour
	if k.Gran == "day" {
		g = aggregate.Day
	}
	pts, err := st.Counts(context.Background(), serving.Batch,
		serving.CountQuery{Kind: k.Kind, AppID: k.App, Version: k.Version, Gran: g, From: k.Bucket, To: k.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	return pts
}

// requireSignatureDefects fails unless the traffic's damaged records
// (count by reason) hold every kind of bad signature.
func requireSignatureDefects(t *testing.T, invalid map[string]int64) {
	t.Helper()
	for _, r := range []event.Reason{event.ReasonEmptySignature, event.ReasonSignatureTooLong, event.ReasonSignatureNotUTF8} {
		if invalid[string(r)] == 0 {
			t.Fatalf("the traffic has no record with %s: %v", r, invalid)
		}
	}
}
