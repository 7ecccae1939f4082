package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
)

var fuzzEndpoints = []string{"/v1/counts", "/v1/late", "/v1/users", "/v1/active", "/v1/crash-free", "/v1/apps", "/healthz"}

// FuzzParams sends arbitrary query strings to every endpoint of a server
// on a seeded store. Whatever the input, the answer is JSON, never a 5xx,
// and a 400 names a parameter; and whatever a parser accepts keeps its
// promises (a range in order and within its limit, an app of 1-128 bytes
// of UTF-8). The seed corpus is in testdata/fuzz/FuzzParams.
func FuzzParams(f *testing.F) {
	st := openSQLite(f)
	sd := newSeed(time.Date(2026, 11, 20, 15, 30, 0, 0, time.UTC), 0)
	sd.write(f, st)
	h := api.NewHandler(api.NewService(&serving.Querier{Store: st}), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	f.Add(uint8(0), "app=com.acme.notes&from=2026-11-14&to=2026-11-20")
	f.Add(uint8(0), "app=com.acme.notes&granularity=minute&from=2026-11-20T15:00:00Z&to=2026-11-20T15:30:00Z")
	f.Add(uint8(2), "app=com.acme.maps&version=3.1.0&from=2026-11-01&to=2026-11-20")
	f.Add(uint8(3), "app=com.acme.chat&date=2026-11-20&kind=crash")
	f.Add(uint8(4), "app=com.acme.chat&from=2026-10-22&to=2026-11-20")
	f.Add(uint8(1), "app=x&from=2026-11-20&to=2026-11-10")
	f.Add(uint8(0), "app=%zz")
	f.Fuzz(func(t *testing.T, ep uint8, raw string) {
		path := fuzzEndpoints[int(ep)%len(fuzzEndpoints)]
		req := httptest.NewRequest("GET", path, nil)
		req.URL.RawQuery = raw
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 404, 414:
		default:
			t.Fatalf("GET %s?%q: status %d: %s", path, raw, rec.Code, rec.Body)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s?%q: %d, not JSON: %q", path, raw, rec.Code, rec.Body)
		}
		if rec.Code == 400 && body["param"] == "" || rec.Code != 200 && body["error"] == "" {
			t.Fatalf("GET %s?%q: %d without naming the problem: %s", path, raw, rec.Code, rec.Body)
		}
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if r, err := api.ParseCounts(v); err == nil {
			limit := map[aggregate.Granularity]float64{aggregate.Minute: api.MaxMinuteDays, aggregate.Hour: api.MaxHourDays, aggregate.Day: api.MaxDayDays}[r.Gran]
			if r.To.Before(r.From) || r.To.Sub(r.From).Hours()/24 > limit || !r.Gran.TruncateTime(r.From).Equal(r.From) {
				t.Errorf("ParseCounts(%q) accepted %+v", raw, r)
			}
			checkApp(t, raw, r.App, r.Version)
		}
		if r, err := api.ParseUsers(v); err == nil {
			if r.To.Before(r.From) || r.To.Sub(r.From).Hours()/24 >= api.MaxUserDays || r.From.Hour() != 0 {
				t.Errorf("ParseUsers(%q) accepted %+v", raw, r)
			}
			checkApp(t, raw, r.App, r.Version)
		}
		if r, err := api.ParseCrashFree(v); err == nil {
			if r.To.Before(r.From) || r.To.Sub(r.From).Hours()/24 >= api.MaxUserDays {
				t.Errorf("ParseCrashFree(%q) accepted %+v", raw, r)
			}
			checkApp(t, raw, r.App, r.Version)
		}
	})
}

func checkApp(t *testing.T, raw, app, version string) {
	if len(app) < 1 || len(app) > 128 || !utf8.ValidString(app) || len(version) > 64 || !utf8.ValidString(version) {
		t.Errorf("%q: accepted app %q version %q", raw, app, version)
	}
}
