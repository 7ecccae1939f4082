package archive

import (
	"context"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// A record stamped in 2090 among good ones: it is kept as a future_time
// dead letter, no directory of the future appears, and every good record
// is archived, with a device whose clock is in 2090 but whose record was
// received in time (clock skew, which the batch counts by arrival).
func TestFutureTime(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	var msgs []message
	for i := range 20 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, hour0.Add(time.Duration(i)*time.Minute))))
	}
	y2090 := time.Date(2090, 3, 1, 12, 0, 0, 0, time.UTC)
	stamped := ev(event.AppLoad, 100, y2090) // both times in 2090
	deviceAhead := ev(event.AppLoad, 101, hour0)
	deviceAhead.EventTime = y2090.UnixMilli() // received in time, a device clock in 2090: archived
	justAhead := ev(event.AppLoad, 102, time.Now().Add(event.DefaultMaxFuture+10*time.Minute))
	future := []message{eventMessage(prefix, 0, stamped), eventMessage(prefix, 0, deviceAhead), eventMessage(prefix, 0, justAhead)}
	msgs = append(msgs[:10], append(future, msgs[10:]...)...)
	produce(t, brokers, msgs...)

	root := t.TempDir()
	a := start(t, testConfig(t, brokers, prefix, root))
	waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == int64(len(msgs)) })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}

	var archived int
	for p, evs := range rawFiles(t, root) {
		archived += len(evs)
		if !strings.HasPrefix(p, "app_load/dt=2026-11-20/") {
			t.Errorf("raw file %s, want only dt=2026-11-20", p)
		}
	}
	if archived != 21 {
		t.Errorf("%d records archived, want the 20 good ones and the skewed device's", archived)
	}
	// No dt= directory anywhere (raw, dead letters, seals) after the bound.
	limit := time.Now().Add(event.DefaultMaxFuture).UTC().Format(time.DateOnly)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "dt=") && d.Name()[3:] > limit {
			t.Errorf("a directory of the future: %s", p)
		}
		return err
	})
	if s := a.Stats(); !reflect.DeepEqual(s.DeadLetters, map[string]int64{ReasonFutureTime: 2}) {
		t.Errorf("dead letters %v, want 2 %s", s.DeadLetters, ReasonFutureTime)
	}
	files, err := blob.ListPrefix(context.Background(), root+"/deadletter/archive/")
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, f := range files {
		recs, err := deadletter.ReadFile(context.Background(), f.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Reason != ReasonFutureTime || r.Detail == "" {
				t.Errorf("dead letter %s: %s, want %s with a detail", r.Source, r.Reason, ReasonFutureTime)
			}
			var e event.Event
			if err := event.NewDecoder().DecodeSingle(r.Payload, &e); err != nil {
				t.Errorf("dead letter payload: %v", err)
				continue
			}
			kept[string(e.DeviceID)] = true
		}
	}
	if kept[string(deviceAhead.DeviceID)] {
		t.Errorf("record %s, received in time, kept as a dead letter", deviceAhead.DeviceID)
	}
	for _, e := range []event.Event{stamped, justAhead} {
		if !kept[string(e.DeviceID)] {
			t.Errorf("record %s (event %s, received %s) not kept as a dead letter", e.DeviceID, e.EventAt(), e.ReceivedAt())
		}
	}
}

// clock is a processing clock a test moves.
type clock struct{ ms atomic.Int64 }

func newClock(at time.Time) *clock {
	c := &clock{}
	c.set(at)
	return c
}

func (c *clock) set(at time.Time) { c.ms.Store(at.UnixMilli()) }
func (c *clock) now() time.Time   { return time.UnixMilli(c.ms.Load()).UTC() }
func sealedOf(t *testing.T, root string, k event.Kind) []int {
	t.Helper()
	missing, err := raw.Sealed(context.Background(), root, k, hour0)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []int
	for h := range 24 {
		if !contains(missing, h) {
			sealed = append(sealed, h)
		}
	}
	return sealed
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// Seals on kfake, over two runs of the archiver. hour0 is 10:00 of the day.
//
// Run 1, at 12:30 (complete through 12:25): handled_exception, whose
// partitions are all empty, is sealed from SealFrom (10:00) to 12:00 at
// once; app_load and crash wait while their records sit in open segments,
// and are sealed through 12:00 when the stop commits them. Hour 12 stays
// open for every kind, though a record in it is committed.
//
// Run 2, a restart at 15:10: every kind resumes after its newest seal and
// seals 12, 13 and 14, and nothing twice; a record that arrives for the
// sealed hour 11 is archived there and counted; hour 15 stays open.
func TestSealsCommittedHours(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 2)
	root := t.TempDir()
	clk := newClock(hour0.Add(2*time.Hour + 30*time.Minute))
	cfg := testConfig(t, brokers, prefix, root)
	cfg.Now, cfg.SealInterval, cfg.SealFrom = clk.now, 50*time.Millisecond, hour0

	produce(t, brokers,
		eventMessage(prefix, 0, ev(event.AppLoad, 1, hour0.Add(10*time.Minute))),
		eventMessage(prefix, 1, ev(event.AppLoad, 2, hour0.Add(time.Hour+5*time.Minute))),
		eventMessage(prefix, 0, ev(event.AppLoad, 3, hour0.Add(2*time.Hour+20*time.Minute))),
		eventMessage(prefix, 0, ev(event.Crash, 4, hour0.Add(30*time.Minute))), // crash partition 1 stays empty
	)
	a := start(t, cfg)
	waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == 4 })
	waitFor(t, "the idle kind sealed", func() bool { return len(sealedOf(t, root, event.HandledException)) == 2 })
	// Several checks later, the kinds with uncommitted records are still open.
	checks := a.Stats().Seals
	time.Sleep(5 * cfg.SealInterval)
	for _, k := range []event.Kind{event.AppLoad, event.Crash} {
		if got := sealedOf(t, root, k); len(got) != 0 {
			t.Errorf("%s sealed %v before its records were committed", k, got)
		}
	}
	if got := a.Stats().Seals; got != checks {
		t.Errorf("%d seals, then %d: nothing new should be sealed", checks, got)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, k := range event.Kinds {
		if got, want := sealedOf(t, root, k), []int{10, 11}; !reflect.DeepEqual(got, want) {
			t.Errorf("run 1: %s sealed hours %v, want %v", k, got, want)
		}
	}
	if s := a.Stats(); s.Seals != 6 || s.SealErrors != 0 {
		t.Errorf("run 1: %d seals, %d errors; want 6 and 0", s.Seals, s.SealErrors)
	}

	// Run 2: a restart, later; each record commits as it comes.
	clk.set(hour0.Add(5*time.Hour + 10*time.Minute))
	cfg.RollRecords = 1
	produce(t, brokers, eventMessage(prefix, 1, ev(event.AppLoad, 5, hour0.Add(3*time.Hour+30*time.Minute))))
	b := start(t, cfg)
	waitFor(t, "hours 12-14 sealed", func() bool {
		for _, k := range event.Kinds {
			if !reflect.DeepEqual(sealedOf(t, root, k), []int{10, 11, 12, 13, 14}) {
				return false
			}
		}
		return true
	})
	produce(t, brokers, eventMessage(prefix, 0, ev(event.AppLoad, 6, hour0.Add(time.Hour+40*time.Minute))))
	waitFor(t, "the late record archived", func() bool { return b.Stats().Archived == 2 })
	time.Sleep(5 * cfg.SealInterval)
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, k := range event.Kinds {
		if got, want := sealedOf(t, root, k), []int{10, 11, 12, 13, 14}; !reflect.DeepEqual(got, want) {
			t.Errorf("run 2: %s sealed hours %v, want %v", k, got, want)
		}
	}
	if s := b.Stats(); s.Seals != 9 || s.ArchivedAfterSeal != 1 || s.SealErrors != 0 {
		t.Errorf("run 2: %d seals, %d archived after their seal, %d errors; want 9, 1, 0", s.Seals, s.ArchivedAfterSeal, s.SealErrors)
	}
	late := rawFiles(t, root)
	var inHour11 int
	for p, evs := range late {
		if strings.HasPrefix(p, hourDir(event.AppLoad, hour0.Add(time.Hour))+"/") {
			inHour11 += len(evs)
		}
	}
	if inHour11 != 2 {
		t.Errorf("%d records in the sealed hour 11, want 2 (one of them late)", inHour11)
	}
}

// Two members of one group, each with one partition of app_load: the
// member that commits its own partition does not seal the hour while the
// other's records are uncommitted; the seal follows the group's offsets.
func TestSealsFollowTheGroup(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 2)
	root := t.TempDir()
	clk := newClock(hour0.Add(2*time.Hour + 30*time.Minute))
	cfg := testConfig(t, brokers, prefix, root)
	cfg.Now, cfg.SealInterval, cfg.SealFrom = clk.now, 50*time.Millisecond, hour0
	// The range balancer splits each topic's two partitions between the two.
	cfg.KafkaOptions = append(cfg.KafkaOptions, kgo.Balancers(kgo.RangeBalancer()))
	a := start(t, cfg)
	waitFor(t, "a alone", func() bool { return a.Stats().Partitions == 6 })
	b := start(t, cfg)
	waitFor(t, "the partitions split", func() bool { return a.Stats().Partitions == 3 && b.Stats().Partitions == 3 })
	produce(t, brokers,
		eventMessage(prefix, 0, ev(event.AppLoad, 1, hour0.Add(10*time.Minute))),
		eventMessage(prefix, 1, ev(event.AppLoad, 2, hour0.Add(20*time.Minute))))
	waitFor(t, "both consumed", func() bool { return a.Stats().Consumed == 1 && b.Stats().Consumed == 1 })
	if err := a.stop(t); err != nil { // commits a's partition, then seals what the group allows
		t.Fatal(err)
	}
	topic := kafkaio.Topic(prefix, event.AppLoad)
	if c0, c1 := committed(t, brokers, cfg.Group, topic, 0), committed(t, brokers, cfg.Group, topic, 1); (c0 == 1) == (c1 == 1) {
		t.Fatalf("committed %d and %d: want one partition committed", c0, c1)
	}
	time.Sleep(5 * cfg.SealInterval)
	if got := sealedOf(t, root, event.AppLoad); len(got) != 0 {
		t.Errorf("app_load sealed %v while one partition is uncommitted", got)
	}
	if got := sealedOf(t, root, event.Crash); !reflect.DeepEqual(got, []int{10, 11}) {
		t.Errorf("crash (idle) sealed %v, want [10 11]", got)
	}
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := sealedOf(t, root, event.AppLoad); !reflect.DeepEqual(got, []int{10, 11}) {
		t.Errorf("app_load sealed %v once both committed, want [10 11]", got)
	}
}
