package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
)

// TestCachedAnswers: behind query serve's read cache, an answer carries an
// ETag and is 304 to If-None-Match while nothing changed; a batch run that
// changes the numbers changes the answer at the next request; a stream
// firing changes the speed part within the speed TTL, and the answer says
// how old its speed part is.
func TestCachedAnswers(t *testing.T) { eachStore(t, testCachedAnswers) }

func testCachedAnswers(t *testing.T, st serving.Store) {
	ctx := context.Background()
	sd := newSeed(time.Now(), 0)
	sd.write(t, st)
	const speedTTL = 300 * time.Millisecond
	svc := api.NewService(&serving.Querier{Store: serving.NewReadCache(st, serving.CacheOptions{SpeedTTL: speedTTL, MaxBytes: 64 << 20})})
	srv := httptest.NewServer(api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	defer srv.Close()
	yesterday := sd.today.AddDate(0, 0, -1)
	path := srv.URL + "/v1/counts" + q("kind", "crash", "app", "com.acme.maps", "from", yesterday.Format(time.DateOnly), "to", sd.today.Format(time.DateOnly))
	get := func(etag string) (int, http.Header, api.CountsResponse) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r api.CountsResponse
		if res.StatusCode == 200 {
			if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
				t.Fatal(err)
			}
		}
		return res.StatusCode, res.Header, r
	}
	layerCount := func(r api.CountsResponse, layer string) int64 {
		var n int64
		for _, p := range r.Points {
			if p.Layer == layer {
				n += p.Count
			}
		}
		return n
	}
	code, h, first := get("")
	e1 := h.Get("ETag")
	wantBatch := sd.dayCount[truthKey{event.Crash, "com.acme.maps", "", yesterday}]
	if code != 200 || e1 == "" || h.Get("Cache-Control") != "private, no-cache" || layerCount(first, "batch") != wantBatch {
		t.Fatalf("first answer: %d, ETag %q, Cache-Control %q, batch %d (want %d)", code, e1, h.Get("Cache-Control"), layerCount(first, "batch"), wantBatch)
	}
	if age, err := strconv.ParseFloat(h.Get(api.SpeedAgeHeader), 64); err != nil || age < 0 {
		t.Errorf("%s: %q, want the speed part's age in seconds", api.SpeedAgeHeader, h.Get(api.SpeedAgeHeader))
	}
	if code, h, _ := get(e1); code != 304 || h.Get("ETag") != e1 {
		t.Errorf("If-None-Match of the same answer: %d (ETag %q), want 304", code, h.Get("ETag"))
	}

	// A batch re-run of yesterday with 7 more crashes, recorded after its
	// rows as a run does: the next request has them.
	started := time.Now()
	w, err := st.NewWriter(ctx, serving.Batch, serving.WithStamp(serving.BatchStamp(yesterday, started)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.Crash, AppID: "com.acme.maps", Gran: aggregate.Day, Bucket: yesterday.UnixMilli(), Count: wantBatch + 7}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.Crash, AsOf: yesterday, WindowStart: sd.today.AddDate(0, 0, -30),
		Started: started, Finished: time.Now(), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
		t.Fatal(err)
	}
	code, h, second := get(e1)
	if code != 200 || layerCount(second, "batch") != wantBatch+7 || h.Get("ETag") == e1 {
		t.Errorf("after the batch run: %d, batch %d (want %d), ETag %q (was %q)", code, layerCount(second, "batch"), wantBatch+7, h.Get("ETag"), e1)
	}

	// The stream fires: 5 more crashes today. The speed part changes once
	// its cached read is older than the TTL (waited for, not slept).
	speedBefore := layerCount(second, "speed")
	sw, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("firing"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.Crash, AppID: "com.acme.maps", Gran: aggregate.Day, Bucket: sd.today.UnixMilli(), Count: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		_, _, r := get("")
		n := layerCount(r, "speed")
		if n == speedBefore+5 {
			break
		}
		if n != speedBefore || time.Now().After(deadline) {
			t.Fatalf("speed part %d, want %d then %d", n, speedBefore, speedBefore+5)
		}
	}
}

// catalogCounter counts catalog reads.
type catalogCounter struct {
	serving.Store
	mu sync.Mutex
	n  int
}

func (c *catalogCounter) Catalog(ctx context.Context, l serving.Layer, k event.Kind, from, to time.Time) ([]serving.AppVersion, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Store.Catalog(ctx, l, k, from, to)
}

func (c *catalogCounter) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestUnknownAppsRescanOncePerSecond: a flood of requests for apps nobody
// has, from many clients at once, reads the catalog again at most once a
// second in total, and each gets its 404.
func TestUnknownAppsRescanOncePerSecond(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	cc := &catalogCounter{Store: st}
	srv := httptest.NewServer(api.NewHandler(api.NewService(&serving.Querier{Store: cc}), slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	defer srv.Close()
	s := &server{Server: srv}
	if code := s.get(t, "/v1/apps", nil); code != 200 {
		t.Fatal(code)
	}
	perScan := cc.reads()
	day := sd.today.Format(time.DateOnly)
	start := time.Now()
	var wg sync.WaitGroup
	codes := make(chan int, 400)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(srv.URL + "/v1/counts" + q("app", fmt.Sprintf("no.such.app-%d", i), "from", day, "to", day))
			if err != nil {
				codes <- -1
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	elapsed := time.Since(start)
	for c := range codes {
		if c != 404 {
			t.Fatalf("an unknown app: %d, want 404", c)
		}
	}
	// The bound grows with the time taken, so a slow machine cannot fail it.
	scans := (cc.reads() - perScan) / perScan
	if limit := 1 + int(elapsed/time.Second); scans > limit {
		t.Errorf("400 unknown-app requests over %v rescanned the catalog %d times, want at most %d", elapsed, scans, limit)
	}
	t.Logf("400 unknown-app requests in %v: %d rescans", elapsed, scans)
}
