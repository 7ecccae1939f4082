package api

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
	_ "github.com/lumenhq/lumen/serving/sqlitestore" // sqlite: stores
)

// gatedStore holds Catalog calls while gate is set.
type gatedStore struct {
	serving.Store
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedStore) Catalog(ctx context.Context, l serving.Layer, k event.Kind, from, to time.Time) ([]serving.AppVersion, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return g.Store.Catalog(ctx, l, k, from, to)
}

// An expired app list is answered while a background read replaces it:
// requests for known apps never wait for the periodic refresh.
func TestCatalogRefreshesInTheBackground(t *testing.T) {
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := st.NewWriter(ctx, serving.Speed, serving.WithRun("r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteCounts(ctx, []aggregate.CountRow{{Kind: event.AppLoad, AppID: "a", AppVersion: "1", Gran: aggregate.Day, Bucket: aggregate.Day.Truncate(time.Now().UnixMilli()), Count: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	gs := &gatedStore{Store: st, entered: make(chan struct{}, 1)}
	s := NewService(&serving.Querier{Store: gs})
	s.ttl = time.Millisecond
	if _, err := s.app(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	gs.gate = make(chan struct{})
	gs.mu.Unlock()
	for s.mu.Lock(); time.Since(s.appsAt) <= s.ttl; s.mu.Lock() { // wait for the list to expire
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := s.app(ctx, "a")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a request for a known app waited for the catalog refresh")
	}
	<-gs.entered // the background read is under way
	gs.mu.Lock()
	close(gs.gate)
	gs.gate = nil
	gs.mu.Unlock()
	s.refresh.Lock() // the background read has finished
	s.refresh.Unlock()
}
