package pipelines

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/teststream"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

func TestMain(m *testing.M) {
	// The stream's options, as its launcher sets them (launch.RunStream).
	*jobopts.Experiments = strings.Join(StreamExperiments, ",")
	ptest.MainWithDefault(m, "prism")
}

func init() {
	register.DoFn2x1[[]byte, func(aggregate.AppKey, aggregate.Agg), error](&decodeSingleFn{})
	register.Emitter2[aggregate.AppKey, aggregate.Agg]()
	register.Function1x2(countRowKey)
	register.Function1x2(lateRowKey)
	register.Function1x2(userRowKey)
	register.Function2x1(describeKV)
	register.Function1x2(keyTooLate)
}

// decodeSingleFn decodes TestStream's single-object messages into
// partials of one event each, keeping their timestamps (the event times
// TestStream assigned): the finest partials kafkaio.ReadPartials can make.
type decodeSingleFn struct{ d *event.Decoder }

func (f *decodeSingleFn) ProcessElement(msg []byte, emit func(aggregate.AppKey, aggregate.Agg)) error {
	if f.d == nil {
		f.d = event.NewDecoder()
	}
	var e event.Event
	if err := f.d.DecodeSingle(msg, &e); err != nil {
		return err
	}
	fn := aggregate.CombineFn{Gran: aggregate.Minute, Precision: 14}
	emit(aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}, fn.AddEvent(fn.CreateAccumulator(), &e))
	return nil
}

func keyTooLate(e event.Event) (string, event.Event) {
	return fmt.Sprintf("%s/%d/%x", e.AppID, e.EventTime, e.DeviceID), e
}

func countRowKey(r aggregate.CountRow) (string, int64) {
	return bucketKey(r.Kind, r.AppID, r.AppVersion, r.Gran, r.BucketTime()), r.Count
}

func lateRowKey(r aggregate.LateRow) (string, int64) {
	return bucketKey(r.Kind, r.AppID, r.AppVersion, r.Gran, time.UnixMilli(r.Bucket).UTC()), r.Count
}

func userRowKey(r aggregate.UserRow) (string, int64) {
	return bucketKey(r.Kind, r.AppID, r.AppVersion, aggregate.Day, r.DayTime()), r.Estimate
}

func describeKV(k string, n int64) string { return fmt.Sprintf("%s=%d", k, n) }

// finals reduces running totals to each bucket's last (largest) value, in
// the global window, as "bucket=n".
func finals(s beam.Scope, keyed beam.PCollection) beam.PCollection {
	return beam.ParDo(s, describeKV, beam.WindowInto(s, window.NewGlobalWindows(), stats.MaxPerKey(s, keyed)))
}

func expect(m map[string]int64) []any {
	var out []any
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, n))
	}
	return out
}

// streamCase builds events by hand and keeps the ground truth of what the
// speed layer must count, and what it must drop as late, per bucket.
type streamCase struct {
	c       teststream.Config
	speed   map[string]int64 // kind/app/version/gran/bucket
	late    map[string]int64
	devices map[string]map[string]bool // kind/app/version/day → device ids
	n       int
}

func newStreamCase() *streamCase {
	return &streamCase{c: teststream.NewConfig(), speed: map[string]int64{}, late: map[string]int64{}, devices: map[string]map[string]bool{}}
}

func bucketKey(k event.Kind, app, version string, g aggregate.Granularity, t time.Time) string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", k, app, version, g, t.UTC().Format(time.RFC3339))
}

// add adds events at event time t (one per device, device ids d0, d1, …)
// that the speed layer counts (late=false) or drops as late (late=true).
func (sc *streamCase) add(t time.Time, k event.Kind, app, version string, devices int, late bool) {
	var msgs [][]byte
	for i := 0; i < devices; i++ {
		e := event.Event{Kind: k, AppID: app, AppVersion: version, Platform: "android",
			DeviceID: []byte(fmt.Sprintf("d%d", i)), EventTime: t.UnixMilli(), ReceivedTime: t.UnixMilli() + 1000}
		if k.HasSignature() {
			e.Signature = "sig"
		}
		msgs = append(msgs, event.AppendSingle(nil, &e))
		sc.n++
		m := sc.speed
		if late {
			m = sc.late
		}
		for _, v := range []string{version, aggregate.AllVersions} {
			m[bucketKey(k, app, v, aggregate.Minute, t.Truncate(time.Minute))]++
			m[bucketKey(k, app, v, aggregate.Hour, t.Truncate(time.Hour))]++
			if !late {
				m[bucketKey(k, app, v, aggregate.Day, t.Truncate(24*time.Hour))]++
				dk := bucketKey(k, app, v, aggregate.Day, t.Truncate(24*time.Hour))
				if sc.devices[dk] == nil {
					sc.devices[dk] = map[string]bool{}
				}
				sc.devices[dk][string(e.DeviceID)] = true
			}
		}
	}
	if err := sc.c.AddElementList(t.UnixMilli(), msgs); err != nil {
		panic(err)
	}
}

func (sc *streamCase) watermark(t time.Time) { sc.c.AdvanceWatermark(t.UnixMilli()) }
func (sc *streamCase) tick(d time.Duration)  { sc.c.AdvanceProcessingTime(d.Milliseconds()) }

// TestStreamAggregates drives the speed layer with TestStream on prism:
// early firings make partial minute counts visible before the minute
// closes, events behind the watermark are dropped from the speed counts and
// counted as late (per pane, so a bucket late twice sums), events beyond
// the lateness horizon (from the reader) are counted as late one by one,
// and what lands in the store is exactly the ground truth per minute, hour
// and day, with exact sketches of today's devices.
func TestStreamAggregates(t *testing.T) {
	base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	sc := newStreamCase()
	// Minute 10:00, app a, early: 3 loads, then (after a firing) 2 more.
	sc.add(at(10*time.Second), event.AppLoad, "a", "1.0", 3, false)
	sc.add(at(15*time.Second), event.Crash, "a", "1.0", 1, false)
	sc.tick(3 * time.Second)
	sc.tick(3 * time.Second)
	sc.add(at(40*time.Second), event.AppLoad, "a", "1.1", 2, false)
	sc.add(at(70*time.Second), event.AppLoad, "b", "2.0", 4, false)
	sc.tick(3 * time.Second)
	// Close minute 10:00; then late events for it, in two late panes.
	sc.watermark(at(65 * time.Second))
	sc.tick(3 * time.Second)
	sc.add(at(20*time.Second), event.AppLoad, "a", "1.0", 2, true)
	sc.tick(3 * time.Second)
	sc.add(at(30*time.Second), event.AppLoad, "a", "1.1", 1, true)
	sc.add(at(50*time.Second), event.Crash, "b", "2.0", 1, true)
	sc.tick(3 * time.Second)
	// Minute 10:01 is still open: on time.
	sc.add(at(80*time.Second), event.AppLoad, "a", "1.0", 5, false)
	// An hour later; then late events for the 10:01 minute and 10:00 hour.
	sc.add(at(time.Hour+5*time.Second), event.HandledException, "a", "1.0", 2, false)
	sc.watermark(at(time.Hour + 2*time.Minute))
	sc.tick(3 * time.Second)
	sc.add(at(90*time.Second), event.AppLoad, "b", "2.0", 3, true)
	sc.tick(3 * time.Second)
	sc.c.AdvanceWatermarkToInfinity()

	// Two events the reader found beyond the lateness horizon (yesterday).
	tooLate := []event.Event{
		{Kind: event.Crash, AppID: "a", AppVersion: "0.9", Platform: "ios", DeviceID: []byte("x"), EventTime: base.Add(-20 * time.Hour).UnixMilli(), ReceivedTime: base.UnixMilli(), Signature: "s"},
		{Kind: event.Crash, AppID: "a", AppVersion: "0.9", Platform: "ios", DeviceID: []byte("y"), EventTime: base.Add(-20 * time.Hour).UnixMilli(), ReceivedTime: base.UnixMilli(), Signature: "s"},
	}
	for _, e := range tooLate {
		for _, v := range []string{e.AppVersion, aggregate.AllVersions} {
			sc.late[bucketKey(e.Kind, e.AppID, v, aggregate.Minute, e.EventAt().Truncate(time.Minute))]++
			sc.late[bucketKey(e.Kind, e.AppID, v, aggregate.Hour, e.EventAt().Truncate(time.Hour))]++
		}
	}

	store := "sqlite:" + filepath.Join(t.TempDir(), "speed.db")
	p, s := beam.NewPipelineWithRoot()
	partials := beam.ParDo(s, &decodeSingleFn{}, teststream.Create(s, sc.c))
	tl := beam.ParDo(s, keyTooLate, beam.CreateList(s, tooLate))
	out := StreamAggregates(s, partials, tl, StreamConfig{Store: store, Every: 2 * time.Second, Precision: 14})
	// On the graph's outputs: every bucket's final total, the late counts
	// (late panes and events beyond the horizon, summed per bucket), and
	// today's sketches' estimates.
	passert.Equals(s, beam.Flatten(s, finals(s, beam.ParDo(s, countRowKey, out.Minutes)),
		finals(s, beam.ParDo(s, countRowKey, out.Hours)), finals(s, beam.ParDo(s, countRowKey, out.Days))), expect(sc.speed)...)
	lateRows := beam.Flatten(s, beam.WindowInto(s, window.NewGlobalWindows(), beam.ParDo(s, lateRowKey, out.Late)),
		beam.WindowInto(s, window.NewGlobalWindows(), beam.ParDo(s, lateRowKey, out.TooLate)))
	passert.Equals(s, beam.ParDo(s, describeKV, stats.SumPerKey(s, lateRows)), expect(sc.late)...)
	wantDevices := map[string]int64{}
	for k, d := range sc.devices {
		wantDevices[k] = int64(len(d))
	}
	passert.Equals(s, finals(s, beam.ParDo(s, userRowKey, out.Users)), expect(wantDevices)...)
	ptest.RunAndValidate(t, p)

	st, err := serving.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, gotLate := map[string]int64{}, map[string]int64{}
	gotDevices := map[string]int64{}
	ctx := context.Background()
	for _, k := range event.Kinds {
		for _, app := range []string{"a", "b"} {
			for _, v := range []string{"0.9", "1.0", "1.1", "2.0", aggregate.AllVersions} {
				for _, g := range []aggregate.Granularity{aggregate.Minute, aggregate.Hour, aggregate.Day} {
					q := serving.CountQuery{Kind: k, AppID: app, Version: v, Gran: g, From: base.AddDate(0, 0, -1), To: base.AddDate(0, 0, 1)}
					pts, err := st.Counts(ctx, serving.Speed, q)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range pts {
						got[bucketKey(k, app, v, g, p.Bucket)] = p.Count
					}
					if g == aggregate.Day {
						continue
					}
					pts, err = st.Late(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range pts {
						gotLate[bucketKey(k, app, v, g, p.Bucket)] = p.Count
					}
				}
				rows, err := st.Users(ctx, serving.Speed, serving.UserQuery{Kind: k, AppID: app, Version: v, From: base.AddDate(0, 0, -1), To: base})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					gotDevices[bucketKey(k, app, v, aggregate.Day, r.DayTime())] = r.Estimate
				}
			}
		}
	}
	diffCounts(t, "speed", sc.speed, got)
	diffCounts(t, "late", sc.late, gotLate)
	diffCounts(t, "devices", wantDevices, gotDevices)
}

func diffCounts(t *testing.T, what string, want, got map[string]int64) {
	t.Helper()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s %s = %d, want %d", what, k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s = %d, want none", what, k, n)
		}
	}
}
