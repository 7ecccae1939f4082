package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/archive"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/testing/avrotest"
	"github.com/lumenhq/lumen/testing/kafkatest"
	"github.com/lumenhq/lumen/testing/s3test"
)

// archiveGenConfig is the traffic of the archiver's end-to-end tests: a few
// days with offline devices reporting hours to days late, skewed clocks,
// too-old events and damaged records.
func archiveGenConfig(seed uint64) gen.Config {
	return gen.Config{Seed: seed, Start: time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC), Days: 3, WindowDays: 3,
		Events: 30_000, Apps: 8, OfflineShare: 0.1, SkewShare: 0.02, TooOld: 60, InvalidShare: 0.002}
}

// byReceivedTime feeds a sink each record with its arrival set to its
// received_time: the archiver partitions by the record's received_time,
// the only arrival it can see, so a record whose received_time is damaged
// (before 2000) lands in its 1999 hour, outside any batch window, and
// the truth of a batch over the archive must not expect it.
type byReceivedTime struct{ gen.Sink }

func (s byReceivedTime) Record(r *gen.Record) error {
	c := *r
	c.Arrival = r.Event.ReceivedTime
	return s.Sink.Record(&c)
}

// recordSet is a multiset of event records by kind and Avro encoding.
type recordSet map[string]int

func recordKey(e *event.Event) string {
	return e.Kind.String() + ":" + string(event.AppendBinary(nil, e))
}

// Record counts one record as sent.
func (s recordSet) Record(r *gen.Record) error {
	s[recordKey(&r.Event)]++
	return nil
}

// DayDone does nothing.
func (s recordSet) DayDone(time.Time) error { return nil }

// archiveJunk is what produceForArchive adds besides the generated
// traffic, by the archiver's dead-letter reason.
var archiveJunk = map[string]int64{archive.ReasonUndecodable: 5, archive.ReasonKindMismatch: 1}

// produceForArchive generates cfg onto Kafka in arrival order, at rate
// events/s (0: as fast as Kafka takes them), followed by five undecodable
// messages and a crash on the handled_exception topic. It returns the
// truth of a batch over what the archiver must land, and the records sent.
func produceForArchive(t *testing.T, brokers []string, prefix string, cfg gen.Config, rate float64) (*gen.Truth, recordSet) {
	t.Helper()
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	defer p.Close()
	cfg.EnsureDefaults()
	tb := gen.NewTruthBuilder(cfg.Seed, cfg.AsOf(), cfg.WindowDays)
	sent := recordSet{}
	ctx := context.Background()
	ks := gen.NewKafkaSink(ctx, p, rate, false, gen.Tee{byReceivedTime{tb}, sent})
	start := time.Now()
	if err := gen.Generate(cfg, ks); err != nil {
		t.Error(err)
		return nil, nil
	}
	if err := ks.Close(); err != nil {
		t.Error(err)
		return nil, nil
	}
	for i := range archiveJunk[archive.ReasonUndecodable] {
		p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.AppLoad), nil, []byte(fmt.Sprintf("not avro %d", i)), cfg.Start)
	}
	crash := event.Event{Kind: event.Crash, AppID: "x", AppVersion: "1", Platform: "ios", DeviceID: []byte{1},
		EventTime: cfg.Start.UnixMilli(), ReceivedTime: cfg.Start.UnixMilli(), Signature: "s"}
	p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.HandledException), nil, event.AppendSingle(nil, &crash), cfg.Start)
	if err := p.Flush(ctx); err != nil {
		t.Error(err)
		return nil, nil
	}
	t.Logf("produced %d records in %v", ks.Sent+6, time.Since(start).Round(time.Millisecond))
	return tb.Truth(), sent
}

func eventTopics(prefix string) []string {
	var ts []string
	for _, k := range event.Kinds {
		ts = append(ts, kafkaio.Topic(prefix, k))
	}
	return ts
}

// groupProgress returns, over every partition of the event topics, the
// group's committed offsets and the end offsets (committed -1: none).
func groupProgress(t *testing.T, brokers []string, group, prefix string) (committed, end map[string]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo, err := adm.ListEndOffsets(ctx, eventTopics(prefix)...)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	fo, err := adm.FetchOffsets(ctx, group)
	for kerr.IsRetriable(err) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		fo, err = adm.FetchOffsets(ctx, group)
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatal(err)
	}
	committed, end = map[string]int64{}, map[string]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		k := fmt.Sprintf("%s/%d", o.Topic, o.Partition)
		end[k] = o.Offset
		committed[k] = -1
		if c, ok := fo.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			committed[k] = c.At
		}
	})
	return committed, end
}

// awaitCaughtUp waits until the group has committed every end offset.
//
// It is a condition, not a deadline: it fails only when neither the lag
// nor the archiver's own work (work, any count that grows while it works)
// moved for stall, however long a loaded machine takes overall (moto is
// some 8× slower than gofakes3).
func awaitCaughtUp(t *testing.T, brokers []string, group, prefix string, stall time.Duration, work func() int64, why func() string) {
	t.Helper()
	last, lastWork, since := int64(-1), work(), time.Now()
	for {
		c, e := groupProgress(t, brokers, group, prefix)
		lag := int64(0)
		for k, end := range e {
			lag += end - max(0, c[k])
		}
		if lag == 0 {
			return
		}
		if w := work(); lag != last || w != lastWork {
			last, lastWork, since = lag, w, time.Now()
		}
		if time.Since(since) > stall {
			t.Fatalf("group %s made no progress for %v, %d records behind: committed %v, end %v; %s", group, stall, lag, c, e, why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkArchive reads every raw and archiver dead-letter file under root
// and requires exactly the records sent, each once, each in the hour of
// its received_time and in a file named for its topic; and the junk as
// dead letters, each once.
func checkArchive(t *testing.T, root, prefix string, sent recordSet) {
	t.Helper()
	ctx := context.Background()
	files, err := blob.ListPrefix(ctx, root+"/raw/")
	if err != nil {
		t.Fatal(err)
	}
	left := make(recordSet, len(sent))
	for k, n := range sent {
		left[k] = n
	}
	var records, extra int
	for _, f := range files {
		k, hour, err := raw.ParsePath(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if topic, _, _, ok := archive.ParseObjectName(path.Base(f.Path)); !ok || topic != kafkaio.Topic(prefix, k) {
			t.Errorf("%s: not an archiver name of topic %s", f.Path, kafkaio.Topic(prefix, k))
		}
		for _, e := range avrotest.ReadEvents(t, f.Path, k) {
			records++
			if !e.ReceivedAt().Truncate(time.Hour).Equal(hour) {
				t.Errorf("%s holds an event received at %s", f.Path, e.ReceivedAt())
			}
			key := recordKey(&e)
			if left[key] == 0 {
				if extra++; extra <= 5 {
					t.Errorf("%s: a record archived more often than sent (or never sent): %v", f.Path, e)
				}
				continue
			}
			left[key]--
		}
	}
	missing := 0
	for _, n := range left {
		missing += n
	}
	t.Logf("archive: %d records in %d raw files; %d missing, %d extra", records, len(files), missing, extra)
	if missing != 0 || extra != 0 {
		t.Errorf("archive: %d records missing and %d extra (duplicates)", missing, extra)
	}

	dl, err := blob.ListPrefix(ctx, root+"/deadletter/archive/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	seen := map[string]bool{}
	for _, f := range dl {
		recs, err := deadletter.ReadFile(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[r.Reason]++
			at := fmt.Sprintf("%s@%d", r.Source, r.Offset)
			if seen[at] || r.Pipeline != "archive" || len(r.Payload) == 0 {
				t.Errorf("dead letter %v: twice, or without its context", r)
			}
			seen[at] = true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(archiveJunk) {
		t.Errorf("archiver dead letters %v, want %v", got, archiveJunk)
	}
}

// batchOverArchive runs the batch over the archive and compares the store
// with the truth, exactly.
func batchOverArchive(t *testing.T, root string, s3 s3fs.Options, cfg gen.Config, tr *gen.Truth) {
	t.Helper()
	store := sqliteURL(t)
	start := time.Now()
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: cfg.AsOf(), WindowDays: cfg.WindowDays, Store: store,
		DeadLetterRoot: t.TempDir(), S3: s3})
	t.Logf("batch over the archive: %v", time.Since(start).Round(time.Millisecond))
	checkAgainstTruth(t, openStore(t, store), tr)
}

// TestArchiveEndToEnd: generated traffic (late offline devices, skewed
// clocks, too-old and damaged records, undecodable messages) goes onto
// Kafka with 3 partitions, the archiver lands it as raw files, locally, on
// gofakes3 and (with LUMEN_TEST_S3) on moto, and the batch over each
// archive equals the ground truth exactly; every record sent is archived
// exactly once, and the junk is dead-lettered.
func TestArchiveEndToEnd(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	cfg := archiveGenConfig(41)
	tr, sent := produceForArchive(t, brokers, prefix, cfg, 0)
	if t.Failed() {
		return
	}
	if tr.Counters.TooOld == 0 || tr.Counters.ClockSkew == 0 || len(tr.Counters.DeadLetters) == 0 {
		t.Fatalf("the traffic does not exercise the cases: %+v", tr.Counters)
	}
	for _, out := range []string{"local", "gofakes3", "moto"} {
		t.Run(out, func(t *testing.T) {
			root := t.TempDir()
			var s3 s3fs.Options
			switch out {
			case "gofakes3":
				e := s3test.Fake(t)
				s3, root = e.Options, e.Root("lake")
			case "moto":
				e := s3test.Moto(t)
				s3, root = e.Options, e.Root("lake")
			}
			group := prefix + "archive-" + out
			alog := &syncBuffer{} // shown if the archiver stalls
			a, err := archive.New(archive.Config{Brokers: brokers, TopicPrefix: prefix, Group: group, Output: root, S3: s3,
				Codec: avroio.CodecSnappy, RollRecords: 2_000, RollInterval: 500 * time.Millisecond, ProgressInterval: -1,
				SealFrom:     cfg.Start, // a first deployment over a log that is whole from the dataset's start
				Logger:       slog.New(slog.NewTextHandler(alog, nil)),
				KafkaOptions: []kgo.Opt{kgo.WithLogger(kgo.BasicLogger(alog, kgo.LogLevelInfo, nil))}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- a.Run(ctx) }()
			work := func() int64 {
				select {
				case err := <-done:
					t.Fatalf("the archiver stopped before it caught up: %v; its log:\n%s", err, alog.String())
				default:
				}
				s := a.Stats()
				return s.Consumed + s.Files + s.Segments + s.Commits + s.Seals
			}
			awaitCaughtUp(t, brokers, group, prefix, 2*time.Minute, work, func() string {
				return fmt.Sprintf("stats %+v\narchiver log:\n%s\n%s", a.Stats(), alog.String(), stacks("lumen/archive", "franz-go", "s3fs"))
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			s := a.Stats()
			t.Logf("archived %d records into %d files (%.1f MiB) in %v; dead letters %v", s.Archived, s.Files,
				float64(s.Bytes)/(1<<20), time.Since(start).Round(time.Millisecond), s.DeadLetters)
			if fmt.Sprint(s.DeadLetters) != fmt.Sprint(archiveJunk) || s.Archived+6 != s.Consumed {
				t.Errorf("stats: %+v", s)
			}
			checkArchive(t, root, prefix, sent)
			batchOverArchive(t, root, s3, cfg, tr)
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stacks returns the stacks of this process's goroutines whose frames
// mention any of the packages: where a stalled component waits.
func stacks(pkgs ...string) string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var b strings.Builder
	b.WriteString("goroutines in " + strings.Join(pkgs, ", ") + ":\n")
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, p := range pkgs {
			if strings.Contains(g, p) {
				b.WriteString(g + "\n\n")
				break
			}
		}
	}
	return b.String()
}
