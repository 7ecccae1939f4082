package archive

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/kafkatest"
	"github.com/lumenhq/lumen/testing/s3test"
)

// Segments roll at RollRecords, each commit lands only after its file,
// and a stop rolls and commits the rest.
func TestRollByRecords(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.AppLoad)
	var msgs []message
	var want []event.Event
	for i := range 250 {
		e := ev(event.AppLoad, i, hour0.Add(time.Duration(i)*time.Second))
		want = append(want, e)
		msgs = append(msgs, eventMessage(prefix, 0, e))
	}
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	cfg.RollRecords = 100
	a := start(t, cfg)
	waitFor(t, "offset 200 committed", func() bool { return committed(t, brokers, cfg.Group, topic, 0) == 200 })
	if s := a.Stats(); s.Files != 2 || s.Archived != 200 {
		t.Errorf("before the stop: %d files, %d records durable; want 2 and 200", s.Files, s.Archived)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, brokers, cfg.Group, topic, 0); got != 250 {
		t.Errorf("committed %d after the stop, want 250", got)
	}
	files := rawFiles(t, root)
	wantNames := []string{ObjectName(topic, 0, 0), ObjectName(topic, 0, 100), ObjectName(topic, 0, 200)}
	if got := names(files); !slices.Equal(got, wantNames) {
		t.Fatalf("files %v, want %v", got, wantNames)
	}
	for i, n := range wantNames {
		got := files[hourDir(event.AppLoad, hour0)+"/"+n]
		if !reflect.DeepEqual(got, want[i*100:min(250, i*100+100)]) {
			t.Errorf("%s holds %d records, not offsets %d.. in order", n, len(got), i*100)
		}
	}
	if s := a.Stats(); s.Consumed != 250 || s.Archived != 250 || s.Files != 3 || s.Segments != 3 {
		t.Errorf("stats %+v", s)
	}
}

// Segments roll once their record bytes reach RollBytes.
func TestRollByBytes(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.Crash)
	var msgs []message
	for i := range 35 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.Crash, i, hour0)))
	}
	size := int64(len(msgs[0].value))
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	cfg.RollBytes = 10*size - 1 // the 10th record crosses it
	a := start(t, cfg)
	waitFor(t, "three segments", func() bool { return a.Stats().Segments == 3 })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	files := rawFiles(t, root)
	want := []string{ObjectName(topic, 0, 0), ObjectName(topic, 0, 10), ObjectName(topic, 0, 20), ObjectName(topic, 0, 30)}
	if got := names(files); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if n := len(files[hourDir(event.Crash, hour0)+"/"+want[3]]); n != 5 {
		t.Errorf("last file holds %d records, want 5", n)
	}
}

// A segment rolls RollInterval after its first record, with no more
// traffic and no stop.
func TestRollByInterval(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.HandledException)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	cfg.RollInterval = 300 * time.Millisecond
	a := start(t, cfg)
	var msgs []message
	for i := range 5 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.HandledException, i, hour0)))
	}
	produce(t, brokers, msgs...)
	waitFor(t, "offset 5 committed by the interval", func() bool { return committed(t, brokers, cfg.Group, topic, 0) == 5 })
	produce(t, brokers, eventMessage(prefix, 0, ev(event.HandledException, 9, hour0.Add(2*time.Hour))))
	waitFor(t, "offset 6 committed by the interval", func() bool { return committed(t, brokers, cfg.Group, topic, 0) == 6 })
	files := rawFiles(t, root)
	want := map[string]int{
		hourDir(event.HandledException, hour0) + "/" + ObjectName(topic, 0, 0):                  5,
		hourDir(event.HandledException, hour0.Add(2*time.Hour)) + "/" + ObjectName(topic, 0, 5): 1,
	}
	got := map[string]int{}
	for p, evs := range files {
		got[p] = len(evs)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
}

// One segment writes one file per arrival hour, all with the same name;
// every decodable record is archived as produced, invalid or not; what
// cannot be archived is dead-lettered with its reason and position.
func TestHoursAndDeadLetters(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.AppLoad)
	hours := []time.Time{hour0, hour0.Add(time.Hour), hour0.Add(26 * time.Hour)}
	var msgs []message
	wantFiles := map[string]int{}
	for i := range 30 {
		at := hours[i%3].Add(time.Duration(i) * time.Minute)
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, at)))
		wantFiles[hourDir(event.AppLoad, at)+"/"+ObjectName(topic, 0, 0)]++
	}
	invalid := ev(event.AppLoad, 100, hour0)
	invalid.AppID = "" // fails validation, but is the batch's to dead-letter
	msgs = append(msgs, eventMessage(prefix, 0, invalid))
	wantFiles[hourDir(event.AppLoad, hour0)+"/"+ObjectName(topic, 0, 0)]++
	old := ev(event.AppLoad, 101, time.Date(1999, 6, 1, 12, 30, 0, 0, time.UTC))
	msgs = append(msgs, eventMessage(prefix, 0, old)) // received before 2000: archived in its hour
	wantFiles[hourDir(event.AppLoad, old.ReceivedAt())+"/"+ObjectName(topic, 0, 0)]++

	crash := ev(event.Crash, 102, hour0)
	dead := []message{
		{topic, 0, []byte("not avro"), hour0},                                   // offset 32
		{topic, 0, event.AppendSingle(nil, &crash)[:20], hour0},                 // 33: truncated
		{topic, 0, event.AppendSingle(nil, &crash), hour0},                      // 34: a crash on the app_load topic
		eventMessage(prefix, 0, ev(event.AppLoad, 103, time.UnixMilli(-1<<62))), // 35: no directory for its hour (before year 1)
	}
	dead[3].ts = hour0
	msgs = append(msgs, dead...)
	msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, 104, hour0)))
	wantFiles[hourDir(event.AppLoad, hour0)+"/"+ObjectName(topic, 0, 0)]++
	produce(t, brokers, msgs...)

	root := t.TempDir()
	a := start(t, testConfig(t, brokers, prefix, root))
	waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == int64(len(msgs)) })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var archived []event.Event
	for p, evs := range rawFiles(t, root) {
		got[p] = len(evs)
		archived = append(archived, evs...)
	}
	if !reflect.DeepEqual(got, wantFiles) {
		t.Errorf("raw files %v, want %v", got, wantFiles)
	}
	if !slices.ContainsFunc(archived, func(e event.Event) bool { return e.AppID == "" && event.Validate(&e) == event.ReasonEmptyAppID }) {
		t.Error("the invalid but decodable record was not archived")
	}
	s := a.Stats()
	wantDead := map[string]int64{ReasonUndecodable: 2, ReasonKindMismatch: 1, ReasonBadReceivedTime: 1}
	if !reflect.DeepEqual(s.DeadLetters, wantDead) || s.Archived != int64(len(msgs)-4) || s.DeadLetterFiles != 1 {
		t.Errorf("stats: dead letters %v (want %v), archived %d (want %d), %d dead-letter files", s.DeadLetters, wantDead, s.Archived, len(msgs)-4, s.DeadLetterFiles)
	}
	dlPath := deadletter.Dir(root, "archive", hour0.Format(time.DateOnly)) + "/" + ObjectName(topic, 0, 0)
	recs, err := deadletter.ReadFile(context.Background(), dlPath)
	if err != nil {
		t.Fatal(err)
	}
	var gotDead []string
	for _, r := range recs {
		if r.Pipeline != "archive" || r.Source != topic+"/0" || r.Lost != 1 || r.Detail == "" || len(r.Payload) == 0 {
			t.Errorf("dead letter without its context: %+v", r)
		}
		gotDead = append(gotDead, fmt.Sprintf("%d:%s", r.Offset, r.Reason))
	}
	wantDeadAt := []string{"32:undecodable", "33:undecodable", "34:kind_mismatch", "35:" + ReasonBadReceivedTime}
	if !slices.Equal(gotDead, wantDeadAt) {
		t.Errorf("dead letters %v, want %v", gotDead, wantDeadAt)
	}
}

// A stop rolls every open segment and commits it before leaving.
func TestShutdownRollsAndCommits(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 2)
	var msgs []message
	for i := range 7 {
		msgs = append(msgs, eventMessage(prefix, int32(i%2), ev(event.AppLoad, i, hour0.Add(time.Duration(i)*20*time.Minute))))
	}
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	a := start(t, cfg)
	waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == 7 })
	if s := a.Stats(); s.Files != 0 || s.Commits != 0 {
		t.Fatalf("rolled before the stop: %+v", s)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	topic := kafkaio.Topic(prefix, event.AppLoad)
	if c0, c1 := committed(t, brokers, cfg.Group, topic, 0), committed(t, brokers, cfg.Group, topic, 1); c0 != 4 || c1 != 3 {
		t.Errorf("committed %d and %d, want 4 and 3", c0, c1)
	}
	var n int
	for _, evs := range rawFiles(t, root) {
		n += len(evs)
	}
	if s := a.Stats(); n != 7 || s.Archived != 7 {
		t.Errorf("%d records in files, %d archived; want 7", n, s.Archived)
	}
}

// When a second member joins, the first rolls and commits the segments of
// the partitions it gives up before they move; nothing is lost or doubled.
func TestRevokeRollsAndCommits(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 2)
	var msgs []message
	for _, k := range event.Kinds {
		for i := range 40 {
			msgs = append(msgs, eventMessage(prefix, int32(i%2), ev(k, i, hour0)))
		}
	}
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	a := start(t, cfg)
	waitFor(t, "A consumed everything", func() bool { return a.Stats().Consumed == 120 })
	if s := a.Stats(); s.Files != 0 || s.Partitions != 6 {
		t.Fatalf("A before the rebalance: %+v", s)
	}
	b := start(t, cfg)
	waitFor(t, "B owns partitions", func() bool { return b.Stats().Partitions > 0 && a.Stats().Partitions < 6 })
	moved := 6 - a.Stats().Partitions
	var done int
	for _, k := range event.Kinds {
		for p := range int32(2) {
			switch c := committed(t, brokers, cfg.Group, kafkaio.Topic(prefix, k), p); c {
			case 20:
				done++
			case -1:
			default:
				t.Errorf("%s/%d committed at %d", k, p, c)
			}
		}
	}
	if s := a.Stats(); done < moved || s.Files < int64(moved) {
		t.Errorf("%d partitions moved, but A committed %d and wrote %d files on revoke", moved, done, s.Files)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, evs := range rawFiles(t, root) {
		n += len(evs)
	}
	if n != 120 {
		t.Errorf("%d records in files, want 120", n)
	}
	for _, k := range event.Kinds {
		for p := range int32(2) {
			if c := committed(t, brokers, cfg.Group, kafkaio.Topic(prefix, k), p); c != 20 {
				t.Errorf("%s/%d committed at %d, want 20", k, p, c)
			}
		}
	}
}

// Files an earlier owner wrote but never committed are deleted before
// their records are written again; everything else stays. Locally and on
// S3.
func TestLeftoversRemoved(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			brokers, prefix := kafkatest.Cluster(t, 2)
			topic := kafkaio.Topic(prefix, event.AppLoad)
			root := t.TempDir()
			var s3opts s3fs.Options
			if backend == "s3" {
				e := s3test.Fake(t)
				s3opts = e.Options
				s3fs.Configure(s3opts)
				root = e.Root("lake")
			}
			cfg := testConfig(t, brokers, prefix, root)
			cfg.S3 = s3opts
			var msgs []message
			var evs []event.Event
			for i := range 30 {
				e := ev(event.AppLoad, i, hour0.Add(time.Duration(i)*time.Second))
				evs = append(evs, e)
				msgs = append(msgs, eventMessage(prefix, 0, e))
			}
			produce(t, brokers, msgs...)
			commit(t, brokers, cfg.Group, topic, 0, 10) // an earlier owner committed [0, 10)

			dir := raw.HourDir(root, event.AppLoad, hour0)
			put := func(name string, evs []event.Event) {
				t.Helper()
				out, err := blob.Create(context.Background(), dir+"/"+name)
				if err != nil {
					t.Fatal(err)
				}
				w, err := avroio.NewEventWriter(out, event.AppLoad)
				if err != nil {
					t.Fatal(err)
				}
				for i := range evs {
					w.AppendEvent(&evs[i])
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if err := out.Close(); err != nil {
					t.Fatal(err)
				}
			}
			put(ObjectName(topic, 0, 0), evs[:10])    // committed: stays
			put(ObjectName(topic, 0, 10), evs[10:17]) // uncommitted, other boundaries: goes
			put(ObjectName(topic, 0, 17), evs[17:30]) // uncommitted: goes
			put(ObjectName(topic, 1, 12), evs[:1])    // another partition: stays
			put("part-00000.avro", evs[:1])           // not the archiver's: stays
			if backend == "local" {
				os.WriteFile(filepath.Join(dir, "."+ObjectName(topic, 0, 12)+".tmp-123"), []byte("half"), 0o644)
			}

			a := start(t, cfg)
			waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == 20 })
			if err := a.stop(t); err != nil {
				t.Fatal(err)
			}
			files := rawFiles(t, root)
			got := map[string]int{}
			for p, evs := range files {
				got[path.Base(p)] = len(evs)
			}
			want := map[string]int{ObjectName(topic, 0, 0): 10, ObjectName(topic, 0, 10): 20, ObjectName(topic, 1, 12): 1, "part-00000.avro": 1}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("files %v, want %v", got, want)
			}
			if !reflect.DeepEqual(files[hourDir(event.AppLoad, hour0)+"/"+ObjectName(topic, 0, 10)], evs[10:]) {
				t.Error("the rewritten segment does not hold offsets 10..29")
			}
			if n := a.Stats().LeftoversRemoved; n != 2 {
				t.Errorf("LeftoversRemoved = %d, want 2", n)
			}
			if backend == "local" {
				if hidden, _ := filepath.Glob(filepath.Join(dir, ".*")); len(hidden) != 0 {
					t.Errorf("temporary files left: %v", hidden)
				}
			}
		})
	}
}

// An output that fails makes Run return an OutputError without committing
// the segment it could not write; a restart once the output is back
// archives the rest, exactly once.
func TestCommitOnlyAfterDurable(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.AppLoad)
	e := s3test.Fake(t)
	var failing atomic.Bool
	var puts atomic.Int64
	s3fs.SetHTTPClient(&http.Client{Transport: failingPuts{base: http.DefaultTransport, fail: &failing, puts: &puts}})
	root := e.Root("lake")
	cfg := testConfig(t, brokers, prefix, root)
	cfg.S3 = e.Options
	cfg.RollRecords = 40
	var msgs []message
	for i := range 100 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, hour0)))
	}
	a := start(t, cfg)
	produce(t, brokers, msgs[:40]...)
	waitFor(t, "the first segment committed", func() bool { return committed(t, brokers, cfg.Group, topic, 0) == 40 })
	failing.Store(true)
	produce(t, brokers, msgs[40:]...)
	err := a.wait(t)
	if !IsOutputError(err) {
		t.Fatalf("Run returned %v, want an OutputError", err)
	}
	if c := committed(t, brokers, cfg.Group, topic, 0); c != 40 {
		t.Errorf("committed %d after the failed roll, want 40", c)
	}
	if s := a.Stats(); s.Files != 1 || s.Archived != 40 {
		t.Errorf("stats after the failure: %+v", s)
	}
	if n := len(rawFiles(t, root)); n != 1 {
		t.Errorf("%d files visible after the failure, want 1", n)
	}

	failing.Store(false)
	b := start(t, cfg)
	waitFor(t, "the rest consumed", func() bool { return b.Stats().Consumed == 60 })
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	files := rawFiles(t, root)
	var all []event.Event
	for _, n := range names(files) {
		all = append(all, files[hourDir(event.AppLoad, hour0)+"/"+n]...)
	}
	var want []event.Event
	for i := range 100 {
		want = append(want, ev(event.AppLoad, i, hour0))
	}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("%d records in %v, want offsets 0..99 once each", len(all), names(files))
	}
	if c := committed(t, brokers, cfg.Group, topic, 0); c != 100 {
		t.Errorf("committed %d, want 100", c)
	}
	if puts.Load() == 0 {
		t.Error("no PUT went through the failing transport")
	}
}

// failingPuts refuses S3 PUTs of raw files while fail is set, as a
// bucket whose policy changed would.
type failingPuts struct {
	base http.RoundTripper
	fail *atomic.Bool
	puts *atomic.Int64
}

func (f failingPuts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/raw/") {
		f.puts.Add(1)
		if f.fail.Load() {
			if r.Body != nil {
				r.Body.Close()
			}
			body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`
			return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
				ContentLength: int64(len(body)), Request: r}, nil
		}
	}
	return f.base.RoundTrip(r)
}

// A segment rolls before it would open more than MaxHourFiles hour files:
// the record that needs another hour starts the next segment.
func TestRollByHourFiles(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.AppLoad)
	var msgs []message
	for i, h := range []int{0, 1, 0, 2, 2, 0} {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, hour0.Add(time.Duration(h)*time.Hour))))
	}
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	cfg.MaxHourFiles = 2
	a := start(t, cfg)
	waitFor(t, "everything consumed", func() bool { return a.Stats().Consumed == 6 })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for p, evs := range rawFiles(t, root) {
		got[p] = len(evs)
	}
	want := map[string]int{
		hourDir(event.AppLoad, hour0) + "/" + ObjectName(topic, 0, 0):                  2, // offsets 0, 2
		hourDir(event.AppLoad, hour0.Add(time.Hour)) + "/" + ObjectName(topic, 0, 0):   1, // 1
		hourDir(event.AppLoad, hour0.Add(2*time.Hour)) + "/" + ObjectName(topic, 0, 3): 2, // 3, 4
		hourDir(event.AppLoad, hour0) + "/" + ObjectName(topic, 0, 3):                  1, // 5
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}
