package kafkaio

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/transforms"
)

func init() {
	register.Function1x1(deviceOf)
	register.Function3x0(misstamped)
	register.Function4x0(partialOutsideMinute)
	register.Function2x1(describeMinute)
	register.Function1x2(keyAll)
	register.DoFn3x1[typex.Window, string, int, error](&fileSinkFn{})
	register.DoFn1x1[event.Event, error](&deviceFileFn{})
	register.Emitter1[string]()
}

func deviceOf(e event.Event) string { return string(e.DeviceID) }

// misstamped reports an event not timestamped with its bucket time.
func misstamped(ts beam.EventTime, e event.Event, bad func(string)) {
	if ms, _ := e.BucketTime(); int64(ts) != ms {
		bad(fmt.Sprintf("%s stamped %d, bucket time %d", e.DeviceID, ts, ms))
	}
}

// produceKinds writes 40 events per partition of each kind's topic, a
// second apart, and returns their device ids.
func produceKinds(t *testing.T, brokers []string, partitions int32) []any {
	t.Helper()
	var want []any
	for k, kind := range event.Kinds {
		for part := int32(0); part < partitions; part++ {
			var evs []event.Event
			for i := 0; i < 40; i++ {
				e := ev(kind, k*1000+int(part)*100+i, t0.Add(time.Duration(i)*time.Second))
				evs = append(evs, e)
				want = append(want, string(e.DeviceID))
			}
			produceTo(t, brokers, part, evs)
		}
	}
	return want
}

func allTopics() []string {
	return []string{Topic(prefix, event.AppLoad), Topic(prefix, event.Crash), Topic(prefix, event.HandledException)}
}

// Read, bounded, on any runner: every event once, timestamped with its
// bucket time; no dead letters, none beyond the lateness horizon.
func TestRead(t *testing.T) {
	_, brokers := cluster(t, 3)
	want := produceKinds(t, brokers, 3)
	p, s := beam.NewPipelineWithRoot()
	events, dead, late := Read(s, ReadConfig{Brokers: brokers, Start: StartEarliest, Bounded: true, Topics: allTopics()}, prefix)
	passert.Equals(s, beam.ParDo(s, deviceOf, events), want...)
	passert.Empty(s, beam.ParDo(s, misstamped, events))
	passert.Empty(s, dead)
	passert.Empty(s, late)
	ptest.RunAndValidate(t, p)
}

// ReadPartials aggregates as it reads: merged per minute window, its
// partials count every event of every (kind, app, minute), and each
// partial is timestamped inside the minute it counts.
func TestReadPartials(t *testing.T) {
	_, brokers := cluster(t, 3)
	produceKinds(t, brokers, 3)
	// The truth, computed from what produceKinds wrote: 40 events a
	// partition, a second apart from t0, device k*1000+part*100+i of app
	// "app<n%3>".
	want := map[string]int{}
	for k, kind := range event.Kinds {
		for part := 0; part < 3; part++ {
			for i := 0; i < 40; i++ {
				n := k*1000 + part*100 + i
				want[fmt.Sprintf("%s/app%d %s", kind, n%3, t0.Add(time.Duration(i)*time.Second).Format("15:04"))]++
			}
		}
	}
	var wantRows []any
	for k, n := range want {
		wantRows = append(wantRows, fmt.Sprintf("%s=%d", k, n))
	}
	p, s := beam.NewPipelineWithRoot()
	fn := aggregate.CombineFn{Gran: aggregate.Minute, Precision: 14}
	partials, dead, late := ReadPartials(s, ReadConfig{Brokers: brokers, Start: StartEarliest, Bounded: true, Topics: allTopics()},
		prefix, time.Minute, fn)
	passert.Empty(s, beam.ParDo(s, partialOutsideMinute, partials))
	merged := transforms.MergePartials(s, beam.WindowInto(s, window.NewFixedWindows(time.Minute), partials), fn)
	passert.Equals(s, beam.WindowInto(s, window.NewGlobalWindows(), beam.ParDo(s, describeMinute, merged)), wantRows...)
	passert.Empty(s, dead)
	passert.Empty(s, late)
	ptest.RunAndValidate(t, p)
}

func partialOutsideMinute(ts beam.EventTime, k aggregate.AppKey, a aggregate.Agg, bad func(string)) {
	rows, err := a.CountRows(k, aggregate.Minute)
	if err != nil {
		bad(err.Error())
	}
	for _, r := range rows {
		if aggregate.Minute.Truncate(int64(ts)) != r.Bucket {
			bad(fmt.Sprintf("%v stamped %v", r, ts))
		}
	}
}

func describeMinute(k aggregate.AppKey, a aggregate.Agg) string {
	rows, _ := a.CountRows(k, aggregate.Minute)
	var parts []string
	for _, r := range rows {
		if r.AppVersion == aggregate.AllVersions {
			parts = append(parts, fmt.Sprintf("%s/%s %s=%d", r.Kind, r.AppID, r.BucketTime().Format("15:04"), r.Count))
		}
	}
	return strings.Join(parts, ",")
}

// WriteDeadLetters sends each dead letter to the dead-letter topic, keyed
// by its source, as a single-object Avro message any consumer can read.
func TestWriteDeadLetters(t *testing.T) {
	_, brokers := cluster(t, 1)
	recs := []deadletter.Record{
		{Pipeline: "stream", Source: "lumen.app_load/0", Offset: 7, Index: -1, Lost: 1, Reason: "undecodable", Detail: "x", Payload: []byte("junk")},
		{Pipeline: "stream", Source: "lumen.crash/2", Offset: 9, Index: -1, Lost: 1, Reason: "kind_mismatch", Detail: "y"},
	}
	p, s := beam.NewPipelineWithRoot()
	WriteDeadLetters(s, brokers, Security{}, prefix, beam.CreateList(s, recs))
	ptest.RunAndValidate(t, p)

	cl := kgoClient(t, brokers)
	cl.AddConsumeTopics(DeadLetterTopic(prefix))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < len(recs) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			want, _ := EncodeDeadLetter(recs[0])
			if string(r.Key) == recs[1].Source {
				want, _ = EncodeDeadLetter(recs[1])
			}
			got = append(got, fmt.Sprintf("%s equal=%v", r.Key, string(r.Value) == string(want)))
		})
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[lumen.app_load/0 equal=true lumen.crash/2 equal=true]" {
		t.Errorf("dead-letter topic holds %v", got)
	}
}

func keyAll(e event.Event) (string, int) { return "all", 1 }

// fileSinkFn writes each minute window's count to a file of its own in Dir:
// an external sink the test reads while the unbounded pipeline runs.
type fileSinkFn struct{ Dir string }

func (f *fileSinkFn) ProcessElement(w typex.Window, _ string, n int) error {
	minute := w.MaxTimestamp().ToTime().UTC().Truncate(time.Minute).Format("1504")
	return os.WriteFile(filepath.Join(f.Dir, fmt.Sprintf("window-%s-%d", minute, time.Now().UnixNano())), []byte(fmt.Sprint(n)), 0o644)
}

// deviceFileFn marks each device read with a file in Dir.
type deviceFileFn struct{ Dir string }

func (f *deviceFileFn) ProcessElement(e event.Event) error {
	return os.WriteFile(filepath.Join(f.Dir, "device-"+string(e.DeviceID)), nil, 0o644)
}

// An unbounded read: with one partition busy and one idle, the watermark
// advances with the busy one's event time, so minute windows fire on time;
// a partition added while running is found and read from its start. The
// pipeline never ends by itself, so it reports through files.
func TestUnboundedRead(t *testing.T) {
	_, brokers := cluster(t, 2)
	topic := Topic(prefix, event.AppLoad)
	var evs []event.Event
	for i := 0; i < 600; i++ { // ten minutes of event time on partition 0
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	dir := t.TempDir()

	p, s := beam.NewPipelineWithRoot()
	events, _, _ := Read(s, ReadConfig{Brokers: brokers, Topics: []string{topic}, Start: StartEarliest,
		DiscoveryInterval: 300 * time.Millisecond}, prefix)
	counts := stats.SumPerKey(s, beam.WindowInto(s, window.NewFixedWindows(time.Minute), beam.ParDo(s, keyAll, events)))
	beam.ParDo0(s, &fileSinkFn{Dir: dir}, counts)
	beam.ParDo0(s, &deviceFileFn{Dir: dir}, events)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := prism.Execute(ctx, p); done <- err }()

	windows := func() map[string]int {
		m := map[string]int{}
		files, _ := filepath.Glob(filepath.Join(dir, "window-*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			var n int
			fmt.Sscan(string(b), &n)
			m[strings.Split(filepath.Base(f), "-")[1]] += n
		}
		return m
	}
	// Minutes 10:00..10:07 close: the watermark is the newest event (10:09:59)
	// minus 2 minutes, and the idle partition does not hold it back.
	waitFor(t, 20*time.Second, "minute windows 10:00-10:07 to fire with 60 events each", func() bool {
		w := windows()
		for m := 0; m < 8; m++ {
			if w[t0.Add(time.Duration(m)*time.Minute).Format("1504")] != 60 {
				return false
			}
		}
		return true
	})
	// Add a partition and write to it: the reader discovers it.
	if _, err := kadm.NewClient(kgoClient(t, brokers)).CreatePartitions(ctx, 1, topic); err != nil {
		t.Fatal(err)
	}
	late := ev(event.AppLoad, 9999, t0.Add(20*time.Minute))
	produceTo(t, brokers, 2, []event.Event{late})
	waitFor(t, 60*time.Second, "the new partition's record", func() bool {
		_, err := os.Stat(filepath.Join(dir, "device-"+string(late.DeviceID)))
		return err == nil
	})
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("the streaming job did not stop on cancel")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
