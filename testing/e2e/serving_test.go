package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// splitSink sends records arriving before cut to before (the raw files the
// archiver landed, which the batch reads) and later ones to after (Kafka,
// for the stream).
type splitSink struct {
	cut           int64
	before, after gen.Sink
}

func (s splitSink) Record(r *gen.Record) error {
	if r.Arrival < s.cut {
		return s.before.Record(r)
	}
	return s.after.Record(r)
}

func (s splitSink) DayDone(d time.Time) error {
	for _, x := range []gen.Sink{s.before, s.after} {
		if err := x.DayDone(d); err != nil {
			return err
		}
	}
	return nil
}

// deviceSets is a Sink keeping the exact set of devices per kind, app,
// version ("" for all) and bucket day (event_time, or received_time for a
// device clock ahead), of every valid record: the ground truth of users,
// by plain sets.
type deviceSets map[[3]string]map[time.Time]map[string]bool

func (d deviceSets) Record(r *gen.Record) error {
	if r.Invalid != "" {
		return nil
	}
	e := &r.Event
	when := min(e.EventTime, e.ReceivedTime)
	day := time.UnixMilli(when).UTC().Truncate(24 * time.Hour)
	for _, v := range []string{e.AppVersion, ""} {
		k := [3]string{e.Kind.String(), e.AppID, v}
		if d[k] == nil {
			d[k] = map[time.Time]map[string]bool{}
		}
		if d[k][day] == nil {
			d[k][day] = map[string]bool{}
		}
		d[k][day][string(e.DeviceID)] = true
	}
	return nil
}

func (d deviceSets) DayDone(time.Time) error { return nil }

func (d deviceSets) distinct(k event.Kind, app, version string, from, to time.Time) int {
	all := map[string]bool{}
	for day, ids := range d[[3]string{k.String(), app, version}] {
		if !day.Before(from) && !day.After(to) {
			for id := range ids {
				all[id] = true
			}
		}
	}
	return len(all)
}

// TestServingMergesLayers is the serving layer's acceptance test. The batch
// is complete through day D (run as of D over the raw files of D-29..D);
// the stream then runs over D+1's traffic on Kafka (the real broker of
// LUMEN_TEST_KAFKA in make test, else kfake). Through the HTTP API:
//   - /v1/counts over D-6..D+1 returns batch points for D-6..D and speed
//     points for D+1, each labelled, every app and kind, each equal to the
//     generator's truth; the speed point is the truth minus the late
//     drops, which /v1/late reports;
//   - MAU for D+1 (29 batch days and D+1's speed sketch) is within 2 % of
//     the exact distinct devices, and crash-free users per version within
//     2 points of the exact value.
func TestServingMergesLayers(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 3)
	// D+1 is today and its traffic live (re-stamped to the wall clock as
	// it is sent, keeping each device's lateness): a stream that has been
	// idle has moved its watermark to the wall clock, so a replay of an
	// older day would be all late.
	if left := time.Until(time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)); left < 3*time.Minute {
		t.Logf("waiting %v for midnight UTC, so D+1's traffic stays in one day", left.Round(time.Second))
		time.Sleep(left + time.Second)
	}
	next := time.Now().UTC().Truncate(24 * time.Hour) // D+1
	d := next.AddDate(0, 0, -1)                       // D
	cfg := gen.Config{Seed: 11, Start: d.AddDate(0, 0, -29), Days: 31, Events: 1_000_000, Apps: 4,
		OfflineShare: 0.05, SkewShare: 0.01, InvalidShare: 0.001, FilesPerHour: 2, WindowDays: 30}

	// The stream runs first, reading D+1's traffic as it is sent at a
	// steady rate: offline devices' uploads of hours-old events arrive
	// behind its watermark and are dropped as late. (Whether a late event
	// reaches a closed window depends on bundle timing; with a late
	// horizon of a minute the reader itself drops events that far behind,
	// so the test has late drops to account for on every run.)
	store := sqliteURL(t)
	st := openStore(t, store)
	stop := startStream(t, pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers, Start: kafkaio.StartEarliest},
		TopicPrefix: prefix, Store: store, Every: time.Second, LateHorizon: time.Minute})
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	// Generate once, split by arrival: D-29..D to files, D+1 to Kafka.
	root := t.TempDir()
	files := gen.NewFileSink(root, cfg)
	batchTruth := gen.NewTruthBuilder(cfg.Seed, d, 30)
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	streamTruth := gen.NewStreamTruth()
	exact := deviceSets{} // of the records as sent
	ks := gen.NewKafkaSink(context.Background(), p, 10_000, true, gen.Tee{streamTruth, exact})
	if err := gen.Generate(cfg, splitSink{cut: next.UnixMilli(), before: gen.Tee{files, batchTruth, exact}, after: ks}); err != nil {
		t.Fatal(err)
	}
	if err := files.Close(); err != nil {
		t.Fatal(err)
	}
	// The archiver seals each arrival hour it has landed: D-29..D are.
	if _, err := gen.WriteSeals(root, cfg.Start, next); err != nil {
		t.Fatal(err)
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	t.Logf("D = %s: %d records to Kafka for D+1", d.Format(time.DateOnly), ks.Sent)

	// Wait until the speed layer has accounted for every event of D+1
	// (counted or dropped as late), then stop it and run the batch.
	q := &serving.Querier{Store: st}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var missing []string
		for k, want := range streamTruth.Counts {
			if k.Gran != "day" || k.Version != "" || !k.Bucket.Equal(next) {
				continue
			}
			cq := serving.CountQuery{Kind: k.Kind, AppID: k.App, Gran: aggregate.Day, From: next, To: next.AddDate(0, 0, 1).Add(-time.Millisecond)}
			speed, err := st.Counts(context.Background(), serving.Speed, cq)
			if err != nil {
				t.Fatal(err)
			}
			late, _, err := q.Late(context.Background(), cq)
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			for _, pt := range append(speed, late...) {
				got += pt.Count
			}
			if got != want {
				missing = append(missing, fmt.Sprintf("%v: %d of %d", k, got, want))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			reportDiffs(t, "the stream did not account for D+1", missing)
			t.FailNow()
		}
		time.Sleep(time.Second)
	}
	stop()
	stopped = true
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: d, Store: store, DeadLetterRoot: t.TempDir()})

	srv := httptest.NewServer(api.NewHandler(api.NewService(&serving.Querier{Store: serving.WithTimeout(st, 30*time.Second)}),
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	defer srv.Close()
	get := func(path string, q url.Values, v any) {
		t.Helper()
		res, err := http.Get(srv.URL + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), res.StatusCode, b)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}

	tr := batchTruth.Truth()
	batchDay := map[string]int64{}
	apps := map[string]bool{}
	for _, c := range tr.Counts {
		if c.Gran == "day" {
			batchDay[fmt.Sprint(c.Kind, "/", c.App, "/", c.Version, "/", c.Bucket.Format(time.DateOnly))] = c.Count
			apps[c.App] = true
		}
	}
	checked, speedChecked := 0, 0
	var totalLate int64
	for app := range apps {
		for _, k := range []event.Kind{event.AppLoad, event.Crash, event.HandledException} {
			q := url.Values{"kind": {k.String()}, "app": {app}, "granularity": {"day"},
				"from": {d.AddDate(0, 0, -6).Format(time.DateOnly)}, "to": {next.Format(time.DateOnly)}}
			var counts api.CountsResponse
			get("/v1/counts", q, &counts)
			var late api.LateResponse
			get("/v1/late", q, &late)
			if counts.Watermark == nil || *counts.Watermark != d.Format(time.DateOnly) {
				t.Fatalf("%s %s: watermark %v, want %s", k, app, counts.Watermark, d.Format(time.DateOnly))
			}
			got := map[time.Time]api.Point{}
			for _, pt := range counts.Points {
				got[pt.Bucket] = pt
			}
			for day := d.AddDate(0, 0, -6); !day.After(d); day = day.AddDate(0, 0, 1) {
				want := batchDay[fmt.Sprint(k, "/", app, "//", day.Format(time.DateOnly))]
				pt := got[day]
				if pt.Count != want || (want > 0 && pt.Layer != "batch") {
					t.Errorf("%s %s %s = %d (%s), want %d from batch", k, app, day.Format(time.DateOnly), pt.Count, pt.Layer, want)
				}
				checked++
			}
			want := streamTruth.Counts[gen.StreamKey{Kind: k, App: app, Version: "", Gran: "day", Bucket: next}]
			var dropped int64
			for _, lp := range late.Points {
				if lp.Bucket.Equal(next) {
					dropped = lp.Count
					if !lp.Pending {
						t.Errorf("%s %s: D+1's late drops are not pending", k, app)
					}
				}
			}
			totalLate += dropped
			pt := got[next]
			if pt.Count+dropped != want || (want > 0 && pt.Layer != "speed") {
				t.Errorf("%s %s D+1 = %d (%s) + %d late, want %d from speed", k, app, pt.Count, pt.Layer, dropped, want)
			}
			if want > 0 {
				speedChecked++
			}
			if len(counts.Points) != len(got) || len(got) > 8 {
				t.Errorf("%s %s: %d points for 8 days", k, app, len(counts.Points))
			}
		}
	}
	t.Logf("checked %d batch days and %d speed days through /v1/counts; %d events late (reported by /v1/late)", checked, speedChecked, totalLate)
	if speedChecked == 0 || checked == 0 || totalLate == 0 {
		t.Fatalf("checked %d batch and %d speed days with %d late events: want some of each", checked, speedChecked, totalLate)
	}

	// MAU of D+1 and crash-free users per version over D-28..D+1.
	from := next.AddDate(0, 0, -29)
	worstMAU, worstCF := 0.0, 0.0
	for app := range apps {
		var a api.ActiveResponse
		get("/v1/active", url.Values{"app": {app}, "date": {next.Format(time.DateOnly)}}, &a)
		want := exact.distinct(event.AppLoad, app, "", from, next)
		rel := math.Abs(float64(a.MAU.Estimate)-float64(want)) / float64(want)
		worstMAU = max(worstMAU, rel)
		t.Logf("%s MAU of D+1 = %d, exact %d (%.2f %% off)", app, a.MAU.Estimate, want, 100*rel)
		if rel > 0.02 || a.MAU.BatchDays != 29 || a.MAU.SpeedDays != 1 {
			t.Errorf("%s MAU of D+1 = %d from %d batch + %d speed days, exact %d (%.2f %% off)", app, a.MAU.Estimate, a.MAU.BatchDays, a.MAU.SpeedDays, want, 100*rel)
		}
		var cf api.CrashFreeResponse
		get("/v1/crash-free", url.Values{"app": {app}, "from": {from.Format(time.DateOnly)}, "to": {next.Format(time.DateOnly)}}, &cf)
		if len(cf.Versions) < 2 {
			t.Errorf("%s: crash-free for %d versions", app, len(cf.Versions))
		}
		for _, v := range cf.Versions {
			active := exact.distinct(event.AppLoad, app, v.Version, from, next)
			if active == 0 {
				continue
			}
			rate := 1 - float64(exact.distinct(event.Crash, app, v.Version, from, next))/float64(active)
			diff := math.Abs(v.CrashFree - rate)
			worstCF = max(worstCF, diff)
			t.Logf("%s %q crash-free = %.4f ± %.4f, exact %.4f", app, v.Version, v.CrashFree, v.ErrorBound, rate)
			if diff > 0.02 {
				t.Errorf("%s %q crash-free = %.4f ± %.4f, exact %.4f", app, v.Version, v.CrashFree, v.ErrorBound, rate)
			}
		}
	}
	t.Logf("worst MAU error %.3f %% (bound 2 %%); worst crash-free error %.3f points (bound 2)", 100*worstMAU, 100*worstCF)
}
