package serving_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	_ "github.com/lumenhq/lumen/serving/sqlitestore" // sqlite: stores
)

// slowStore holds every Runs call until the caller's context ends.
type slowStore struct{ serving.Store }

func (s slowStore) Runs(ctx context.Context, k event.Kind) ([]serving.BatchRun, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestWithTimeoutAndRunsTTL(t *testing.T) {
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A call that runs out of time is an ErrTimeout; the caller's own
	// cancellation is not.
	ts := serving.WithTimeout(slowStore{st}, time.Millisecond)
	if _, err := ts.Runs(ctx, event.AppLoad); !serving.IsTimeout(err) {
		t.Errorf("slow Runs: %v, want a timeout", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := serving.WithTimeout(slowStore{st}, time.Hour).Runs(cctx, event.AppLoad); serving.IsTimeout(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Runs: %v, want context.Canceled and no timeout", err)
	}

	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	run := func(d time.Time) {
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: event.AppLoad, AsOf: d, WindowStart: d, Started: d, Finished: d.Add(25 * time.Hour), Status: serving.RunSucceeded, Counters: map[string]int64{}}); err != nil {
			t.Fatal(err)
		}
	}
	run(day)
	cached, fresh := &serving.Querier{Store: serving.NewReadCache(st, serving.CacheOptions{RunsTTL: time.Hour})}, &serving.Querier{Store: serving.NewReadCache(st, serving.CacheOptions{})}
	for _, q := range []*serving.Querier{cached, fresh} {
		if w, err := q.BatchComplete(ctx, event.AppLoad); err != nil || !w.Day.Equal(day) {
			t.Fatalf("watermark %v, %v", w.Day, err)
		}
	}
	run(day.AddDate(0, 0, 1))
	if w, _ := cached.BatchComplete(ctx, event.AppLoad); !w.Day.Equal(day) {
		t.Errorf("within its TTL the cache read the store again (%v)", w.Day)
	}
	if w, _ := fresh.BatchComplete(ctx, event.AppLoad); !w.Day.Equal(day.AddDate(0, 0, 1)) {
		t.Errorf("past its TTL the cache kept %v", w.Day)
	}
}
