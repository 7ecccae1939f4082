package pipelines

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
)

func init() {
	register.Function1x1(describeCount)
	register.Function1x1(describeUsers)
	register.Function1x1(describeStats)
	register.Function2x1(deadReason)
}

func describeCount(r aggregate.CountRow) string {
	return fmt.Sprintf("%s %s/%s %s %s=%d", r.Kind, r.AppID, r.AppVersion, r.Gran, r.BucketTime().Format("2006-01-02T15"), r.Count)
}

func describeUsers(r aggregate.UserRow) string {
	return fmt.Sprintf("%s %s/%s %s users=%d events=%d", r.Kind, r.AppID, r.AppVersion, r.DayTime().Format(time.DateOnly), r.Estimate, r.Events)
}

func describeStats(st KindStats) string {
	var dead []string
	for r, n := range st.DeadLetters {
		dead = append(dead, fmt.Sprintf("%s:%d", r, n))
	}
	sort.Strings(dead)
	p := st.Placement
	return fmt.Sprintf("%s events=%d counted=%d clock_skew=%d too_old=%d after_window=%d dead=%s",
		st.Kind, p.Events, p.Counted, p.ClockSkew, p.TooOld, p.AfterWindow, strings.Join(dead, ","))
}

func deadReason(_ string, r deadletter.Record) string {
	return fmt.Sprintf("%s %s", filepath.Base(r.Source), r.Reason)
}

// writeRaw writes events as one Avro file in the raw layout.
func writeRaw(t *testing.T, root string, k event.Kind, hour time.Time, name string, evs ...event.Event) {
	t.Helper()
	var buf bytes.Buffer
	w, err := avroio.NewEventWriter(&buf, k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.AppendEvent(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := raw.HourDir(root, k, hour)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBatchGraph asserts, with passert, the rows and counters of the batch
// graph over a fixture small enough that its truth is written out below
// by hand: a run as of 2026-11-20 with a two-day window.
func TestBatchGraph(t *testing.T) {
	root := t.TempDir()
	at := func(day, hour, min int) int64 { return time.Date(2026, 11, day, hour, min, 0, 0, time.UTC).UnixMilli() }
	load := func(app, version, device string, eventTime, received int64) event.Event {
		return event.Event{Kind: event.AppLoad, AppID: app, AppVersion: version, Platform: "ios", DeviceID: []byte(device),
			EventTime: eventTime, ReceivedTime: received}
	}
	arrival := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	writeRaw(t, root, event.AppLoad, arrival, "part-0.avro",
		load("a", "1.0", "d1", at(20, 10, 5), at(20, 10, 6)),   // counted: 20th, 10:00
		load("a", "1.1", "d2", at(20, 10, 30), at(20, 10, 31)), // counted: 20th, 10:00
		load("a", "1.0", "d1", at(19, 23, 50), at(20, 10, 20)), // late, counted: 19th, 23:00
		load("a", "1.0", "d3", at(17, 9, 0), at(20, 10, 25)),   // too old for the window
		load("a", "1.1", "d4", at(20, 12, 0), at(20, 10, 40)),  // clock ahead: bucketed 20th 10:00
		load("", "1.0", "d5", at(20, 10, 45), at(20, 10, 46)),  // invalid: no app id
	)
	// A file that is not Avro at all, in the same partition.
	if err := os.WriteFile(filepath.Join(raw.HourDir(root, event.AppLoad, arrival), "junk.avro"), []byte("not avro"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, root, event.Crash, time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC), "part-0.avro",
		event.Event{Kind: event.Crash, AppID: "b", AppVersion: "2.0", Platform: "android", DeviceID: []byte("d9"),
			EventTime: at(19, 8, 10), ReceivedTime: at(19, 8, 11), Signature: "npe"})

	p, s := beam.NewPipelineWithRoot()
	out, err := BuildBatchOutputs(s, BatchConfig{Input: root, AsOf: arrival, WindowDays: 2,
		Store: "sqlite:" + filepath.Join(t.TempDir(), "b.db")})
	if err != nil {
		t.Fatal(err)
	}
	passert.Equals(s, beam.ParDo(s, describeCount, out.Counts),
		"app_load a/1.0 hour 2026-11-20T10=1", "app_load a/1.1 hour 2026-11-20T10=2", "app_load a/ hour 2026-11-20T10=3",
		"app_load a/1.0 hour 2026-11-19T23=1", "app_load a/ hour 2026-11-19T23=1",
		"app_load a/1.0 day 2026-11-20T00=1", "app_load a/1.1 day 2026-11-20T00=2", "app_load a/ day 2026-11-20T00=3",
		"app_load a/1.0 day 2026-11-19T00=1", "app_load a/ day 2026-11-19T00=1",
		"crash b/2.0 hour 2026-11-19T08=1", "crash b/ hour 2026-11-19T08=1",
		"crash b/2.0 day 2026-11-19T00=1", "crash b/ day 2026-11-19T00=1")
	passert.Equals(s, beam.ParDo(s, describeUsers, out.Users),
		"app_load a/1.0 2026-11-20 users=1 events=1", "app_load a/1.1 2026-11-20 users=2 events=2", "app_load a/ 2026-11-20 users=3 events=3",
		"app_load a/1.0 2026-11-19 users=1 events=1", "app_load a/ 2026-11-19 users=1 events=1",
		"crash b/2.0 2026-11-19 users=1 events=1", "crash b/ 2026-11-19 users=1 events=1")
	passert.Equals(s, beam.ParDo(s, describeStats, out.Stats),
		"app_load events=5 counted=4 clock_skew=1 too_old=1 after_window=0 dead=bad_magic:1,empty_app_id:1",
		"crash events=1 counted=1 clock_skew=0 too_old=0 after_window=0 dead=")
	passert.Equals(s, beam.ParDo(s, deadReason, out.Dead), "part-0.avro empty_app_id", "junk.avro bad_magic")
	ptest.RunAndValidate(t, p)
}

// TestBatchStrayFiles: .avro files under a dt= folder but not at
// hr=HH/<name> are dead letters of the listing (bad_path, with their
// paths), and the run counts everything else.
func TestBatchStrayFiles(t *testing.T) {
	root := t.TempDir()
	arrival := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	ms := arrival.UnixMilli()
	ev := event.Event{Kind: event.AppLoad, AppID: "a", AppVersion: "1.0", Platform: "ios", DeviceID: []byte("d1"),
		EventTime: ms + 1000, ReceivedTime: ms + 2000}
	writeRaw(t, root, event.AppLoad, arrival, "part-0.avro", ev)
	good, err := os.ReadFile(filepath.Join(raw.HourDir(root, event.AppLoad, arrival), "part-0.avro"))
	if err != nil {
		t.Fatal(err)
	}
	day := raw.DayPrefix(root, event.AppLoad, arrival)
	for _, stray := range []string{"stray.avro", "hr=10/nested/deeper.avro", "hr=xx/odd.avro"} {
		p := filepath.Join(day, stray)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, good, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p, s := beam.NewPipelineWithRoot()
	out, err := BuildBatchOutputs(s, BatchConfig{Input: root, AsOf: arrival, WindowDays: 2,
		Store: "sqlite:" + filepath.Join(t.TempDir(), "b.db")})
	if err != nil {
		t.Fatal(err)
	}
	passert.Equals(s, beam.ParDo(s, describeCount, out.Counts),
		"app_load a/1.0 hour 2026-11-20T10=1", "app_load a/ hour 2026-11-20T10=1",
		"app_load a/1.0 day 2026-11-20T00=1", "app_load a/ day 2026-11-20T00=1")
	passert.Equals(s, beam.ParDo(s, describeStats, out.Stats),
		"app_load events=1 counted=1 clock_skew=0 too_old=0 after_window=0 dead=bad_path:3")
	passert.Equals(s, beam.ParDo(s, deadReason, out.Dead), "stray.avro bad_path", "deeper.avro bad_path", "odd.avro bad_path")
	ptest.RunAndValidate(t, p)
}

// TestBatchFutureTime: a received time more than MaxFuture ahead of the
// run's clock (BatchConfig.Now) is a future_time dead letter; an event time
// ahead of a sane received time is clock skew, counted by arrival however
// far ahead; every other event is counted as before. The truth is written
// out by hand.
func TestBatchFutureTime(t *testing.T) {
	root := t.TempDir()
	at := func(day, hour, min int) int64 { return time.Date(2026, 11, day, hour, min, 0, 0, time.UTC).UnixMilli() }
	y2090 := time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	now := time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC) // the nightly run after the 20th
	load := func(device string, eventTime, received int64) event.Event {
		return event.Event{Kind: event.AppLoad, AppID: "a", AppVersion: "1.0", Platform: "ios", DeviceID: []byte(device),
			EventTime: eventTime, ReceivedTime: received}
	}
	arrival := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	writeRaw(t, root, event.AppLoad, arrival, "part-0.avro",
		load("d1", at(20, 10, 5), at(20, 10, 6)),  // counted: 20th 10:00
		load("d2", y2090, at(20, 10, 7)),          // a device clock in 2090: clock skew, counted 20th 10:00
		load("d3", at(20, 10, 8), y2090),          // future_time: received time in 2090
		load("d4", at(21, 1, 29), at(20, 10, 9)),  // clock skew, counted 20th 10:00
		load("d5", at(21, 1, 31), at(20, 10, 10)), // past now + 1 h, but received in time: clock skew, counted 20th 10:00
		load("d6", at(20, 9, 59), at(20, 10, 11)), // counted: 20th 09:00
		load("d7", at(21, 1, 0), at(21, 1, 31)),   // received past the bound (now + 61 min): future_time
	)
	p, s := beam.NewPipelineWithRoot()
	out, err := BuildBatchOutputs(s, BatchConfig{Input: root, AsOf: arrival, WindowDays: 2, Now: now,
		Store: "sqlite:" + filepath.Join(t.TempDir(), "b.db")})
	if err != nil {
		t.Fatal(err)
	}
	passert.Equals(s, beam.ParDo(s, describeCount, out.Counts),
		"app_load a/1.0 hour 2026-11-20T10=4", "app_load a/ hour 2026-11-20T10=4",
		"app_load a/1.0 hour 2026-11-20T09=1", "app_load a/ hour 2026-11-20T09=1",
		"app_load a/1.0 day 2026-11-20T00=5", "app_load a/ day 2026-11-20T00=5")
	passert.Equals(s, beam.ParDo(s, describeUsers, out.Users),
		"app_load a/1.0 2026-11-20 users=5 events=5", "app_load a/ 2026-11-20 users=5 events=5")
	passert.Equals(s, beam.ParDo(s, describeStats, out.Stats),
		"app_load events=5 counted=5 clock_skew=3 too_old=0 after_window=0 dead=future_time:2")
	passert.Equals(s, beam.ParDo(s, deadReason, out.Dead), "part-0.avro future_time", "part-0.avro future_time")
	ptest.RunAndValidate(t, p)
}
