package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/pipelines"
)

func TestMain(m *testing.M) { os.Exit(ptest.MainRetWithDefault(m, "prism")) }

// The contract's shapes, as a script reads them.
type countJSON struct {
	Bucket string `json:"bucket"`
	Count  int64  `json:"count"`
}

type usersJSON struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Estimate int64  `json:"estimate"`
}

// The JSON output is a contract: shape, order, inclusive bounds, and the
// numbers, checked against the bundled sample's truth.
func TestQueryContract(t *testing.T) {
	sample := filepath.Join("..", "..", "testing", "sample")
	tr, err := gen.ReadTruth(filepath.Join(sample, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	asOf, _ := time.Parse(time.DateOnly, tr.AsOf)
	store := "sqlite:" + filepath.Join(t.TempDir(), "q.db")
	p, s := beam.NewPipelineWithRoot()
	if err := pipelines.BuildBatch(s, pipelines.BatchConfig{Input: sample, AsOf: asOf, Store: store, DeadLetterRoot: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := ptest.Run(p); err != nil {
		t.Fatal(err)
	}

	query := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), args[0], append(args[1:], "--store", store), &out); err != nil {
			t.Fatalf("query %v: %v", args, err)
		}
		return out.String()
	}

	// Day counts of the crash-spiking app, all versions, over the sample.
	var want []countJSON
	for _, c := range tr.Counts {
		if c.Kind == "crash" && c.App == "com.quill.app" && c.Version == "" && c.Gran == "day" {
			want = append(want, countJSON{Bucket: c.Bucket.Format(time.RFC3339), Count: c.Count})
		}
	}
	gotJSON := query("counts", "--kind", "crash", "--app", "com.quill.app", "--granularity", "day", "--from", "2026-11-22", "--to", "2026-11-24")
	var got []countJSON
	if err := json.Unmarshal([]byte(gotJSON), &got); err != nil {
		t.Fatalf("not JSON: %q", gotJSON)
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: got %v, want %v", i, got[i], want[i])
		}
	}

	// An hour range given as RFC3339 times is inclusive at both ends.
	hours := query("counts", "--kind", "app_load", "--app", "com.photon.app", "--version", "1.0.0", "--granularity", "hour",
		"--from", "2026-11-23T10:00:00Z", "--to", "2026-11-23T12:00:00Z")
	var hs []countJSON
	if err := json.Unmarshal([]byte(hours), &hs); err != nil {
		t.Fatalf("hours: not JSON: %v: %q", err, hours)
	}
	if len(hs) != 3 || hs[0].Bucket != "2026-11-23T10:00:00Z" || hs[2].Bucket != "2026-11-23T12:00:00Z" {
		t.Errorf("hour range: %s", hours)
	}
	for _, h := range hs {
		found := false
		for _, c := range tr.Counts {
			if c.Kind == "app_load" && c.App == "com.photon.app" && c.Version == "1.0.0" && c.Gran == "hour" && c.Bucket.Format(time.RFC3339) == h.Bucket {
				found = c.Count == h.Count
			}
		}
		if !found {
			t.Errorf("hour %s = %d disagrees with the truth", h.Bucket, h.Count)
		}
	}

	// A range with no events is an empty array, not null.
	if out := strings.TrimSpace(query("counts", "--app", "com.photon.app", "--from", "2020-01-01", "--to", "2020-01-02")); out != "[]" {
		t.Errorf("empty range printed %q", out)
	}

	// users: the exact distinct devices of the sample (sparse sketches).
	var u usersJSON
	usersOut := query("users", "--kind", "app_load", "--app", "com.photon.app", "--from", "2026-10-26", "--to", tr.AsOf)
	if err := json.Unmarshal([]byte(usersOut), &u); err != nil {
		t.Fatalf("users: not JSON: %v: %q", err, usersOut)
	}
	compared := 0
	for _, r := range tr.Ranges {
		if r.Kind == "app_load" && r.App == "com.photon.app" && r.Version == "" && r.From == "2026-10-26" && r.To == tr.AsOf {
			compared++
			if u.Estimate != r.Distinct || u.From != "2026-10-26" || u.To != tr.AsOf {
				t.Errorf("users = %+v, want estimate %d", u, r.Distinct)
			}
		}
	}
	if compared != 1 || u.Estimate == 0 {
		t.Errorf("users: %d truth ranges compared (want 1), estimate %d", compared, u.Estimate)
	}

	// Every point says its layer: the sample's batch run covers it all.
	var labelled []struct{ Layer string }
	json.Unmarshal([]byte(query("counts", "--kind", "crash", "--app", "com.quill.app", "--from", "2026-11-22", "--to", "2026-11-24")), &labelled)
	for _, p := range labelled {
		if p.Layer != "batch" {
			t.Errorf("a point before the watermark came from %q", p.Layer)
		}
	}

	// active and crash-free, exactly (the sample's sets are small enough
	// for HLL++'s sparse form), against the truth's 7- and 30-day ranges.
	distinct := func(kind, app, version, from string) int64 {
		for _, r := range tr.Ranges {
			if r.Kind == kind && r.App == app && r.Version == version && r.From == from && r.To == tr.AsOf {
				return r.Distinct
			}
		}
		t.Fatalf("no truth for %s %s %q from %s", kind, app, version, from)
		return 0
	}
	var a struct {
		WAU, MAU struct{ Estimate int64 }
	}
	json.Unmarshal([]byte(query("active", "--app", "com.photon.app", "--date", tr.AsOf)), &a)
	if a.WAU.Estimate != distinct("app_load", "com.photon.app", "", "2026-11-18") || a.MAU.Estimate != distinct("app_load", "com.photon.app", "", "2026-10-26") {
		t.Errorf("active = %+v", a)
	}
	var cf struct {
		Versions []struct {
			Version   string
			CrashFree float64 `json:"crash_free"`
		}
	}
	json.Unmarshal([]byte(query("crash-free", "--app", "com.quill.app", "--from", "2026-10-26", "--to", tr.AsOf)), &cf)
	if len(cf.Versions) < 2 {
		t.Fatalf("crash-free = %+v", cf)
	}
	for _, v := range cf.Versions {
		want := 1 - float64(distinct("crash", "com.quill.app", v.Version, "2026-10-26"))/float64(distinct("app_load", "com.quill.app", v.Version, "2026-10-26"))
		if math.Abs(v.CrashFree-want) > 1e-9 {
			t.Errorf("crash-free of %q = %v, want %v", v.Version, v.CrashFree, want)
		}
	}

	// Bad flags fail with a message naming the flag.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"counts", "--app", "a", "--from", "yesterday", "--to", "2026-11-24"}, "--from"},
		{[]string{"counts", "--app", "a", "--from", "2026-11-24", "--to", "2026-11-24", "--granularity", "week"}, "--granularity"},
		{[]string{"counts", "--from", "2026-11-24", "--to", "2026-11-24"}, "--app"},
		{[]string{"users", "--app", "a", "--kind", "crashes", "--from", "2026-11-24", "--to", "2026-11-24"}, "--kind"},
		{[]string{"users", "--app", "a", "--from", "2026-11-24", "--to", "2026-11-20"}, "--to"},
		{[]string{"active", "--app", "a", "--date", "yesterday"}, "--date"},
		{[]string{"crash-free", "--app", "a", "--from", "2026-11-24"}, "--to"},
		{[]string{"late", "--app", "a", "--granularity", "minute", "--from", "2026-01-01", "--to", "2026-11-24"}, "--to"},
		{[]string{"counts", "--app", "nope", "--from", "2026-11-24", "--to", "2026-11-24"}, "no app"},
		{[]string{"serve", "--timeout", "0s"}, "--timeout"},
	} {
		err := run(context.Background(), c.args[0], append(c.args[1:], "--store", store), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to name %s", c.args, err, c.want)
		}
	}
}
