package serving_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// countingStore counts the count reads that reach the store.
type countingStore struct {
	serving.Store
	counts atomic.Int64
}

func (s *countingStore) Counts(ctx context.Context, l serving.Layer, q serving.CountQuery) ([]serving.CountPoint, error) {
	s.counts.Add(1)
	return s.Store.Counts(ctx, l, q)
}

type cacheFixture struct {
	t     *testing.T
	st    serving.Store
	day   time.Time
	stamp int64
}

func newCacheFixture(t *testing.T) *cacheFixture {
	st, err := serving.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &cacheFixture{t: t, st: st, day: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
}

// batch writes the day's batch count n, as a run would: rows, then its
// batch_runs row.
func (f *cacheFixture) batch(n int64, status serving.RunStatus) {
	f.t.Helper()
	ctx := context.Background()
	f.stamp++
	started := f.day.Add(25*time.Hour + time.Duration(f.stamp)*time.Second)
	if status != serving.RunRunning {
		f.write(serving.Batch, n, serving.WithStamp(serving.BatchStamp(f.day, started)))
	}
	r := serving.BatchRun{Kind: event.Crash, AsOf: f.day, WindowStart: f.day, Started: started, Status: status, Counters: map[string]int64{}}
	if status == serving.RunRunning {
		r.Started = time.Now() // running now, not killed long ago
	} else {
		r.Finished = started.Add(time.Minute)
	}
	if err := f.st.RecordRun(ctx, r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *cacheFixture) write(l serving.Layer, n int64, opts ...serving.WriterOption) {
	f.t.Helper()
	ctx := context.Background()
	w, err := f.st.NewWriter(ctx, l, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	bucket := f.day
	if l == serving.Speed {
		bucket = f.day.AddDate(0, 0, 1)
	}
	if err := w.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, Bucket: bucket.UnixMilli(), Count: n}}); err != nil {
		f.t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// counts answers the day and the next through q: the batch count, then
// the speed count.
func (f *cacheFixture) counts(q *serving.Querier) (batch, speed int64) {
	f.t.Helper()
	pts, err := q.Counts(context.Background(), serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, From: f.day, To: f.day.AddDate(0, 0, 1)})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, p := range pts {
		if p.Layer == serving.Batch {
			batch += p.Count
		} else {
			speed += p.Count
		}
	}
	return batch, speed
}

// A batch answer is cached until batch_runs changes, and changes with the
// first query after it does: never a stale answer, by construction.
func TestReadCacheBatchIsExact(t *testing.T) {
	f := newCacheFixture(t)
	cs := &countingStore{Store: f.st}
	q := &serving.Querier{Store: serving.NewReadCache(cs, serving.CacheOptions{MaxBytes: 1 << 20})}
	f.batch(10, serving.RunSucceeded)
	if b, _ := f.counts(q); b != 10 {
		t.Fatalf("batch %d, want 10", b)
	}
	before := cs.counts.Load()
	for range 5 {
		if b, _ := f.counts(q); b != 10 {
			t.Fatalf("batch %d, want 10", b)
		}
	}
	// The speed part (no speed TTL) is read each time; the batch part not.
	if n := cs.counts.Load() - before; n != 5 {
		t.Errorf("5 repeated queries made %d count reads, want 5 (speed only)", n)
	}

	// A re-run of the day changes the numbers: the next query has them.
	f.batch(12, serving.RunSucceeded)
	if b, _ := f.counts(q); b != 12 {
		t.Errorf("after a re-run: batch %d, want 12", b)
	}
	// While a run is running, batch reads go to the store.
	f.batch(0, serving.RunRunning)
	f.write(serving.Batch, 13, serving.WithStamp(serving.BatchStamp(f.day, f.day.Add(48*time.Hour))))
	if b, _ := f.counts(q); b != 13 {
		t.Errorf("during a run: batch %d, want what the store holds, 13", b)
	}
	f.write(serving.Batch, 14, serving.WithStamp(serving.BatchStamp(f.day, f.day.Add(49*time.Hour))))
	if b, _ := f.counts(q); b != 14 {
		t.Errorf("during a run: batch %d, want 14", b)
	}

	// With a runs TTL, a run shows once batch_runs is read again.
	f = newCacheFixture(t)
	slow := &serving.Querier{Store: serving.NewReadCache(f.st, serving.CacheOptions{RunsTTL: time.Hour, MaxBytes: 1 << 20})}
	f.batch(20, serving.RunSucceeded)
	if b, _ := f.counts(slow); b != 20 {
		t.Fatalf("batch %d, want 20", b)
	}
	f.batch(21, serving.RunSucceeded)
	if b, _ := f.counts(slow); b != 20 {
		t.Errorf("within the runs TTL: batch %d, want the answer at the runs it read, 20", b)
	}
}

// A speed answer is at most SpeedTTL old, says how old it is, and a new
// speed row shows once that has passed.
func TestReadCacheSpeedAge(t *testing.T) {
	f := newCacheFixture(t)
	f.batch(10, serving.RunSucceeded)
	const ttl = 200 * time.Millisecond
	q := &serving.Querier{Store: serving.NewReadCache(f.st, serving.CacheOptions{SpeedTTL: ttl, MaxBytes: 1 << 20})}
	f.write(serving.Speed, 5, serving.WithRun("r1"))
	ask := func() int64 {
		t.Helper()
		before := time.Now()
		ctx, ages := serving.WithReadAges(context.Background())
		pts, err := q.Counts(ctx, serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, From: f.day, To: f.day.AddDate(0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		at, ok := ages.Oldest()
		if !ok {
			t.Fatal("a speed answer without its age")
		}
		if at.Before(before.Add(-ttl)) {
			t.Errorf("a speed read from %v, older than the %v TTL at %v", at, ttl, before)
		}
		var n int64
		for _, p := range pts {
			if p.Layer == serving.Speed {
				n += p.Count
			}
		}
		return n
	}
	if n := ask(); n != 5 {
		t.Fatalf("speed %d, want 5", n)
	}
	f.write(serving.Speed, 9, serving.WithRun("r1"))
	// Wait for the condition, checking the age bound on every answer.
	for n := ask(); n != 9; n = ask() {
		if n != 5 {
			t.Fatalf("speed %d, want 5 or 9", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What the cache holds stays within MaxBytes, concurrent readers agree,
// and a caller changing what it got does not change the cache.
func TestReadCacheBoundedAndShared(t *testing.T) {
	f := newCacheFixture(t)
	f.batch(10, serving.RunSucceeded)
	const max = 64 << 10
	c := serving.NewReadCache(f.st, serving.CacheOptions{MaxBytes: max})
	q := &serving.Querier{Store: c}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				app := fmt.Sprintf("app-%d", (g*400+i)%1000)
				if _, err := q.Counts(context.Background(), serving.CountQuery{Kind: event.Crash, AppID: app, Gran: aggregate.Day, From: f.day, To: f.day}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := c.CachedBytes(); n > max || n == 0 {
		t.Errorf("the cache holds %d bytes, want 0 < n <= %d", n, max)
	}
	get := func() []serving.CountPoint {
		pts, err := c.Counts(context.Background(), serving.Batch, serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Day, From: f.day, To: f.day})
		if err != nil || len(pts) != 1 {
			t.Fatalf("%v %v", pts, err)
		}
		return pts
	}
	get()[0].Count = -1
	if n := get()[0].Count; n != 10 {
		t.Errorf("after a caller changed its copy, the cache answers %d", n)
	}
}

// Queries that differ only within a bucket share a read, and each answer
// is what the store answers for its own range.
func TestReadCacheKeysByBuckets(t *testing.T) {
	f := newCacheFixture(t)
	ctx := context.Background()
	w, err := f.st.NewWriter(ctx, serving.Speed, serving.WithRun("r"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := f.day.Add(30 * time.Hour)
	var rows []aggregate.CountRow
	for m := range 90 {
		rows = append(rows, aggregate.CountRow{Kind: event.Crash, AppID: "a", Gran: aggregate.Minute, Bucket: t0.Add(time.Duration(m) * time.Minute).UnixMilli(), Count: int64(m + 1)})
	}
	if err := w.WriteCounts(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: f.st}
	c := serving.NewReadCache(cs, serving.CacheOptions{SpeedTTL: time.Hour, MaxBytes: 1 << 20})
	for i, r := range [][2]time.Duration{
		{10 * time.Second, time.Hour + 5*time.Second},
		{50 * time.Second, time.Hour + 59*time.Second}, // the same minutes
		{0, time.Hour}, // one more minute at the start
		{time.Minute, time.Hour + 59*time.Second}, // the same minutes as the first
	} {
		q := serving.CountQuery{Kind: event.Crash, AppID: "a", Gran: aggregate.Minute, From: t0.Add(r[0]), To: t0.Add(r[1])}
		got, err := c.Counts(ctx, serving.Speed, q)
		if err != nil {
			t.Fatal(err)
		}
		want, err := f.st.Counts(ctx, serving.Speed, q)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("range %d: the cache answers %v, the store %v", i, got, want)
		}
	}
	if n := cs.counts.Load(); n != 2 {
		t.Errorf("4 queries over 2 distinct minute ranges read the store %d times, want 2", n)
	}
}
