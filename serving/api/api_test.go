package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
	"github.com/lumenhq/lumen/serving/cassandrastore"
	_ "github.com/lumenhq/lumen/serving/sqlitestore" // sqlite: stores
	"github.com/lumenhq/lumen/testing/servicetest"
)

// server is an API server over a seeded SQLite store, logging to a buffer.
type server struct {
	*httptest.Server
	seed *seed
	st   serving.Store
	log  *syncBuffer
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

func openSQLite(t testing.TB) serving.Store {
	t.Helper()
	st, err := serving.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openCassandra opens a fresh keyspace on the test cluster of
// LUMEN_TEST_CASSANDRA, or skips saying how to get one.
func openCassandra(t *testing.T) serving.Store {
	t.Helper()
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	ks := fmt.Sprintf("lumen_api_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	st, err := serving.Open(context.Background(), fmt.Sprintf("cassandra://%s/%s?consistency=ONE", addr, ks))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.(*cassandrastore.Store).Client().Session().Query("DROP KEYSPACE " + ks).Exec()
		st.Close()
	})
	return st
}

// eachStore runs fn on the embedded store and, when LUMEN_TEST_CASSANDRA
// is set, on Cassandra: the API answers the same from either.
func eachStore(t *testing.T, fn func(t *testing.T, st serving.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("cassandra", func(t *testing.T) { fn(t, openCassandra(t)) })
}

func newServer(t testing.TB, st serving.Store, sd *seed) *server {
	t.Helper()
	if sd != nil {
		sd.write(t, st)
	}
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, nil))
	svc := api.NewService(&serving.Querier{Store: serving.WithTimeout(st, 5*time.Second)})
	// Behind the guard, as query serve runs it: every API test and the
	// browser test go through it.
	srv := httptest.NewServer(api.Guard{}.Wrap(api.NewHandler(svc, log, nil)))
	t.Cleanup(srv.Close)
	return &server{Server: srv, seed: sd, st: st, log: buf}
}

// get fetches path and decodes the JSON body into v (if not nil).
func (s *server) get(t testing.TB, path string, v any) int {
	t.Helper()
	res, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && strings.HasPrefix(path, "/v1/") {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %d %q is not JSON: %v", path, res.StatusCode, body, err)
		}
	}
	return res.StatusCode
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// TestCountsAreLabelledAndExact: a range crossing the watermark comes back
// in one answer, batch days then speed days, each equal to the truth.
func TestCountsAreLabelledAndExact(t *testing.T) { eachStore(t, testCountsAreLabelledAndExact) }

func testCountsAreLabelledAndExact(t *testing.T, st serving.Store) {
	sd := newSeed(time.Now(), 0)
	s := newServer(t, st, sd)
	from, to := sd.today.AddDate(0, 0, -6), sd.today
	for _, k := range []event.Kind{event.AppLoad, event.Crash} {
		for _, v := range []string{"", "3.3.0"} {
			var resp api.CountsResponse
			path := "/v1/counts" + q("kind", k.String(), "app", "com.acme.notes", "version", v, "granularity", "day", "from", from.Format(time.DateOnly), "to", to.Format(time.DateOnly))
			if code := s.get(t, path, &resp); code != 200 {
				t.Fatalf("GET %s: %d", path, code)
			}
			if resp.Watermark == nil || *resp.Watermark != sd.today.AddDate(0, 0, -1).Format(time.DateOnly) || !resp.SpeedFrom.Equal(sd.today) {
				t.Errorf("boundary = %v %v, want watermark yesterday and speed from today", resp.Watermark, resp.SpeedFrom)
			}
			want := map[time.Time]int64{}
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				if n := sd.dayCount[truthKey{k, "com.acme.notes", v, d}]; n > 0 {
					want[d] = n
				}
			}
			if len(resp.Points) != len(want) {
				t.Errorf("%s %q: %d points, want %d", k, v, len(resp.Points), len(want))
			}
			for _, p := range resp.Points {
				wantLayer := "batch"
				if !p.Bucket.Before(sd.today) {
					wantLayer = "speed"
				}
				if p.Count != want[p.Bucket] || p.Layer != wantLayer {
					t.Errorf("%s %q %s = %d (%s), want %d (%s)", k, v, p.Bucket.Format(time.DateOnly), p.Count, p.Layer, want[p.Bucket], wantLayer)
				}
			}
		}
	}
	// Minutes are speed points.
	var mins api.CountsResponse
	s.get(t, "/v1/counts"+q("app", "com.acme.notes", "granularity", "minute", "from", sd.today.Format(time.RFC3339), "to", sd.now.Format(time.RFC3339)), &mins)
	var total int64
	for _, p := range mins.Points {
		total += p.Count
		if p.Layer != "speed" {
			t.Errorf("minute %v from %s", p.Bucket, p.Layer)
		}
	}
	if want := sd.dayCount[truthKey{event.AppLoad, "com.acme.notes", "", sd.today}]; total != want {
		t.Errorf("today's minutes sum to %d, want %d", total, want)
	}
}

// TestUsersActiveCrashFree: the sketch answers are within their stated
// error of the exact numbers, and say which layers they merged.
func TestUsersActiveCrashFree(t *testing.T) { eachStore(t, testUsersActiveCrashFree) }

func testUsersActiveCrashFree(t *testing.T, st serving.Store) {
	sd := newSeed(time.Now(), 0)
	s := newServer(t, st, sd)
	app := "com.acme.notes"
	within := func(what string, got int64, want int, rel float64) {
		t.Helper()
		if want == 0 || math.Abs(float64(got)-float64(want))/float64(want) > 4*rel {
			t.Errorf("%s = %d, exact %d: beyond 4 standard errors (%.4f)", what, got, want, rel)
		}
	}
	var a api.ActiveResponse
	if code := s.get(t, "/v1/active"+q("app", app, "date", sd.today.Format(time.DateOnly)), &a); code != 200 {
		t.Fatalf("active: %d", code)
	}
	within("DAU", a.DAU.Estimate, sd.distinct(event.AppLoad, app, "", sd.today, sd.today), a.DAU.RelativeError)
	within("WAU", a.WAU.Estimate, sd.distinct(event.AppLoad, app, "", sd.today.AddDate(0, 0, -6), sd.today), a.WAU.RelativeError)
	within("MAU", a.MAU.Estimate, sd.distinct(event.AppLoad, app, "", sd.today.AddDate(0, 0, -29), sd.today), a.MAU.RelativeError)
	if a.MAU.BatchDays != 29 || a.MAU.SpeedDays != 1 || a.DAU.SpeedDays != 1 || a.DAU.BatchDays != 0 {
		t.Errorf("MAU from %d+%d days, DAU from %d+%d; want 29 batch + 1 speed, 0 + 1", a.MAU.BatchDays, a.MAU.SpeedDays, a.DAU.BatchDays, a.DAU.SpeedDays)
	}
	var u api.UsersResponse
	from := sd.today.AddDate(0, 0, -9)
	s.get(t, "/v1/users"+q("app", app, "version", "3.1.0", "from", from.Format(time.DateOnly), "to", sd.today.Format(time.DateOnly)), &u)
	within("users 3.1.0", u.Estimate, sd.distinct(event.AppLoad, app, "3.1.0", from, sd.today), u.RelativeError)
	if len(u.Days) != 10 || u.Days[9].Layer != "speed" || u.Days[8].Layer != "batch" {
		t.Errorf("days = %+v, want 10 with the last one speed", u.Days)
	}
	for _, d := range u.Days {
		day, _ := time.Parse(time.DateOnly, d.Day)
		within("DAU "+d.Day, d.Estimate, sd.distinct(event.AppLoad, app, "3.1.0", day, day), u.RelativeError)
	}
	var cf api.CrashFreeResponse
	from = sd.today.AddDate(0, 0, -29)
	s.get(t, "/v1/crash-free"+q("app", app, "from", from.Format(time.DateOnly), "to", sd.today.Format(time.DateOnly)), &cf)
	if len(cf.Versions) != 1+len(sd.versions) || cf.Versions[0].Version != "" {
		t.Fatalf("crash-free versions = %+v", cf.Versions)
	}
	for _, v := range cf.Versions {
		active := sd.distinct(event.AppLoad, app, v.Version, from, sd.today)
		crashed := sd.distinct(event.Crash, app, v.Version, from, sd.today)
		exact := 1 - float64(crashed)/float64(active)
		if math.Abs(v.CrashFree-exact) > v.ErrorBound || v.ErrorBound <= 0 || v.ErrorBound > 0.023 {
			t.Errorf("crash-free %q = %.4f ± %.4f, exact %.4f", v.Version, v.CrashFree, v.ErrorBound, exact)
		}
	}
	// The newest version crashes more: the numbers must show it.
	if cf.Versions[3].Version != "3.3.0" || cf.Versions[3].CrashFree >= cf.Versions[1].CrashFree {
		t.Errorf("3.3.0 is the crashy release, got %+v", cf.Versions)
	}
}

// TestLateLedger: drops after the watermark are pending, those before it
// were recounted by the batch; day answers sum the hours.
func TestLateLedger(t *testing.T) { eachStore(t, testLateLedger) }

func testLateLedger(t *testing.T, st serving.Store) {
	sd := newSeed(time.Now(), 0)
	s := newServer(t, st, sd)
	from, to := sd.today.AddDate(0, 0, -1).Format(time.DateOnly), sd.today.Format(time.DateOnly)
	var loads, crashes api.LateResponse
	s.get(t, "/v1/late"+q("app", "com.acme.notes", "granularity", "day", "from", from, "to", to), &loads)
	s.get(t, "/v1/late"+q("kind", "crash", "app", "com.acme.notes", "granularity", "hour", "from", from, "to", to), &crashes)
	if loads.Total != 40 || loads.Pending != 40 || len(loads.Points) != 1 || !loads.Points[0].Pending || !loads.Points[0].Bucket.Equal(sd.today) {
		t.Errorf("loads ledger = %+v, want 40 pending today", loads)
	}
	if crashes.Total != 3 || crashes.Pending != 0 || len(crashes.Points) != 1 || crashes.Points[0].Pending {
		t.Errorf("crash ledger = %+v, want 3 already recounted", crashes)
	}
}

// TestBadInput: every bad request gets a 4xx naming its problem, and the
// server keeps answering good requests after each.
func TestBadInput(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	s := newServer(t, openSQLite(t), sd)
	day := sd.today.Format(time.DateOnly)
	good := "/v1/counts" + q("app", "com.acme.chat", "from", day, "to", day)
	for _, c := range []struct {
		name, path string
		code       int
		param      string
		says       string
	}{
		{"unknown app", "/v1/counts" + q("app", "com.nobody", "from", day, "to", day), 404, "app", "com.nobody"},
		{"inverted range", "/v1/counts" + q("app", "com.acme.chat", "from", "2026-11-20", "to", "2026-11-10"), 400, "to", "before from"},
		{"10 years of minutes", "/v1/counts" + q("app", "com.acme.chat", "granularity", "minute", "from", "2016-01-01", "to", "2025-12-31"), 400, "to", "minute ranges span at most 7"},
		{"malformed date", "/v1/counts" + q("app", "com.acme.chat", "from", "2026-13-45", "to", day), 400, "from", "neither YYYY-MM-DD nor RFC3339"},
		{"unknown kind", "/v1/counts" + q("kind", "crashes", "app", "com.acme.chat", "from", day, "to", day), 400, "kind", `"crashes" is not a kind`},
		{"unknown parameter", "/v1/counts" + q("app", "com.acme.chat", "from", day, "to", day, "limit", "5"), 400, "limit", "unknown parameter"},
		{"huge query string", "/v1/counts" + q("app", strings.Repeat("x", 10000), "from", day, "to", day), 414, "query", "at most 2048"},
		{"repeated parameter", "/v1/counts?app=a&app=b&from=" + day + "&to=" + day, 400, "app", "given 2 times"},
		{"bad granularity", "/v1/counts" + q("app", "com.acme.chat", "granularity", "week", "from", day, "to", day), 400, "granularity", "week"},
		{"missing app", "/v1/counts" + q("from", day, "to", day), 400, "app", "required"},
		{"app too long", "/v1/counts" + q("app", strings.Repeat("a", 129), "from", day, "to", day), 400, "app", "129 bytes"},
		{"control character", "/v1/counts" + q("app", "a\x00b", "from", day, "to", day), 400, "app", "control character"},
		{"bad escape", "/v1/counts?app=%zz", 400, "query", "malformed"},
		{"year 0", "/v1/counts" + q("app", "com.acme.chat", "from", "0000-01-01T00:00:00Z", "to", day), 400, "from", "outside"},
		{"users range too long", "/v1/users" + q("app", "com.acme.chat", "from", "2020-01-01", "to", "2026-01-01"), 400, "to", "user ranges"},
		{"users given times", "/v1/users" + q("app", "com.acme.chat", "from", "2026-11-01T00:00:00Z", "to", day), 400, "from", "not YYYY-MM-DD"},
		{"active bad date", "/v1/active" + q("app", "com.acme.chat", "date", "yesterday"), 400, "date", "yesterday"},
		{"crash-free has no kind", "/v1/crash-free" + q("app", "com.acme.chat", "kind", "crash", "from", day, "to", day), 400, "kind", "unknown parameter"},
		{"apps takes nothing", "/v1/apps?x=1", 400, "x", "no parameters"},
		{"no such endpoint", "/v1/nope", 404, "", "no such page"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e api.ErrorResponse
			code := s.get(t, c.path, &e)
			if code != c.code || e.Param != c.param || !strings.Contains(e.Error, c.says) {
				t.Errorf("GET %.80s: %d %+v, want %d naming %q and saying %q", c.path, code, e, c.code, c.param, c.says)
			}
			var ok api.CountsResponse
			if code := s.get(t, good, &ok); code != 200 || len(ok.Points) == 0 {
				t.Errorf("after %s, a good request got %d %+v", c.name, code, ok)
			}
		})
	}
	// Every problem of a request is named at once.
	var e api.ErrorResponse
	s.get(t, "/v1/counts"+q("kind", "x", "granularity", "y", "from", "z"), &e)
	var names []string
	for _, p := range e.Problems {
		names = append(names, p.Param)
	}
	if got := strings.Join(names, ","); got != "kind,app,granularity,from,to" {
		t.Errorf("problems named %s, want kind,app,granularity,from,to", got)
	}
	// Writes are refused.
	res, err := http.Post(s.URL+good, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", res.StatusCode)
	}
}

// TestAppsHealthMetricsAndLogs: the catalog lists both layers' apps;
// /healthz, /readyz and /metrics answer; every request logs one line with
// its latency.
func TestAppsHealthMetricsAndLogs(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	s := newServer(t, st, sd)
	// An app only the speed layer has seen (released an hour ago).
	w, _ := st.NewWriter(context.Background(), serving.Speed)
	w.WriteCounts(context.Background(), []aggregate.CountRow{{Kind: event.AppLoad, AppID: "com.acme.new", AppVersion: "0.1.0", Gran: aggregate.Day, Bucket: sd.today.UnixMilli(), Count: 5}})
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var apps api.AppsResponse
	s.get(t, "/v1/apps", &apps)
	var ids []string
	for _, a := range apps.Apps {
		ids = append(ids, a.App+"="+strings.Join(a.Layers, "+"))
	}
	if got := strings.Join(ids, " "); got != "com.acme.chat=batch+speed com.acme.maps=batch+speed com.acme.new=speed com.acme.notes=batch+speed" {
		t.Errorf("apps = %s", got)
	}
	if len(apps.Apps[0].Versions) != 3 {
		t.Errorf("versions of %s = %v", apps.Apps[0].App, apps.Apps[0].Versions)
	}
	var ok map[string]string
	if code := s.get(t, "/healthz", &ok); code != 200 || ok["status"] != "ok" {
		t.Errorf("healthz: %d %v", code, ok)
	}
	if code := s.get(t, "/readyz", &ok); code != 200 || ok["status"] != "ready" {
		t.Errorf("readyz: %d %v", code, ok)
	}
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`lumen_http_requests_total{code="200",route="/v1/apps"} 1`, `lumen_http_request_duration_seconds_count{route="/healthz"} 1`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The dashboard and its files.
	for _, p := range []string{"/", "/app.js", "/style.css", "/vendor/uplot/uPlot.iife.min.js", "/vendor/uplot/LICENSE"} {
		res, err := http.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, res.StatusCode)
		}
	}
	s.Close() // waits for the handlers, which log after answering
	lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
	if len(lines) != 9 {
		t.Errorf("%d log lines for 9 requests:\n%s", len(lines), s.log.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "msg=request") || !strings.Contains(l, "latency=") || !strings.Contains(l, "status=") {
			t.Errorf("log line %q lacks the request, its status or latency", l)
		}
	}
}

// blockingStore is the SQLite store with its count reads held until
// released or until the caller's context ends: a slow store, on demand.
type blockingStore struct {
	serving.Store
	mu      sync.Mutex
	block   chan struct{} // nil: do not block
	entered chan struct{}
}

func (b *blockingStore) Counts(ctx context.Context, l serving.Layer, q serving.CountQuery) ([]serving.CountPoint, error) {
	b.mu.Lock()
	block := b.block
	b.mu.Unlock()
	if block != nil {
		b.entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return nil, fmt.Errorf("blocked: %w", ctx.Err())
		}
	}
	return b.Store.Counts(ctx, l, q)
}

// TestTimeoutIs503: a store call that runs out of time answers 503, and
// the server answers the next request.
func TestTimeoutIs503(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	bs := &blockingStore{Store: st, block: make(chan struct{}), entered: make(chan struct{}, 16)}
	// The blocked call always runs out; the limit is long enough that the
	// next request's reads never do, even on a loaded machine.
	svc := api.NewService(&serving.Querier{Store: serving.WithTimeout(bs, 2*time.Second)})
	srv := httptest.NewServer(api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	defer srv.Close()
	s := &server{Server: srv}
	day := sd.today.Format(time.DateOnly)
	var e api.ErrorResponse
	if code := s.get(t, "/v1/counts"+q("app", "com.acme.maps", "from", day, "to", day), &e); code != 503 || !strings.Contains(e.Error, "in time") {
		t.Errorf("slow store: %d %+v, want 503", code, e)
	}
	bs.mu.Lock()
	bs.block = nil
	bs.mu.Unlock()
	var ok api.CountsResponse
	if code := s.get(t, "/v1/counts"+q("app", "com.acme.maps", "from", day, "to", day), &ok); code != 200 || len(ok.Points) != 1 {
		t.Errorf("after the timeout: %d %+v", code, ok)
	}
	if !serving.IsTimeout(fmt.Errorf("x: %w", serving.ErrTimeout)) || serving.IsTimeout(errors.New("other")) {
		t.Error("IsTimeout misclassifies")
	}
}

// TestGracefulShutdown: cancelling Serve's context lets a request in
// flight finish with its answer, then Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	bs := &blockingStore{Store: st, block: make(chan struct{}), entered: make(chan struct{}, 16)}
	svc := api.NewService(&serving.Querier{Store: bs})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- api.Serve(ctx, ln, api.NewHandler(svc, log, nil), log, time.Minute) }()
	day := sd.today.Format(time.DateOnly)
	got := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/v1/counts" + q("app", "com.acme.maps", "from", day, "to", day))
		if err != nil {
			got <- -1
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	<-bs.entered // the request is in the store
	cancel()     // SIGTERM
	close(bs.block)
	if code := <-got; code != 200 {
		t.Errorf("the request in flight got %d, want 200", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// TestLimits: beyond MaxInFlight a request is answered 503 with
// Retry-After at once, while the held one still completes; a request that
// outlives RequestTimeout is 503 too, with its store call cancelled; and
// the server answers normally afterwards.
func TestLimits(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	bs := &blockingStore{Store: st, block: make(chan struct{}), entered: make(chan struct{}, 16)}
	svc := api.NewService(&serving.Querier{Store: bs})
	h := api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv := httptest.NewServer(api.Limits{MaxInFlight: 1, RequestTimeout: time.Hour}.Wrap(h))
	defer srv.Close()
	s := &server{Server: srv}
	day := sd.today.Format(time.DateOnly)
	counts := "/v1/counts" + q("app", "com.acme.maps", "from", day, "to", day)

	held := make(chan int, 1)
	go func() { // no t.Fatal off the test's goroutine
		resp, err := http.Get(srv.URL + counts)
		if err != nil {
			held <- -1
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-bs.entered // the first request holds the one slot, inside the store
	resp, err := http.Get(srv.URL + counts)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a request beyond the limit: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := s.get(t, "/healthz", nil); code != 200 {
		t.Errorf("/healthz under the limit: %d, want 200", code)
	}
	bs.mu.Lock()
	close(bs.block)
	bs.block = nil
	bs.mu.Unlock()
	if code := <-held; code != 200 {
		t.Errorf("the held request: %d, want 200", code)
	}

	// A request deadline that runs out inside a store call.
	bs.mu.Lock()
	bs.block = make(chan struct{})
	bs.mu.Unlock()
	srv2 := httptest.NewServer(api.Limits{MaxInFlight: 4, RequestTimeout: time.Second}.Wrap(h))
	defer srv2.Close()
	var e api.ErrorResponse
	if code := (&server{Server: srv2}).get(t, counts, &e); code != 503 || !strings.Contains(e.Error, "time limit") {
		t.Errorf("a request past its deadline: %d %+v, want 503 naming the time limit", code, e)
	}
	bs.mu.Lock()
	bs.block = nil
	bs.mu.Unlock()
	var answer json.RawMessage
	if code := (&server{Server: srv2}).get(t, counts, &answer); code != 200 || !strings.Contains(string(answer), `"count"`) {
		t.Errorf("after the deadline: %d, %s", code, answer)
	}
}
