package serving

import (
	"context"
	"sync"
	"time"

	"github.com/lumenhq/lumen/event"
)

// CacheRuns returns a Store that answers Runs from a copy at most ttl old
// (per kind). Every query reads the batch watermark from batch_runs, which
// changes once a day: a server that caches it saves a store round trip per
// request, and a finished batch run shows within ttl.
func CacheRuns(s Store, ttl time.Duration) Store {
	return &runsCache{Store: s, ttl: ttl, runs: map[event.Kind]cachedRuns{}}
}

type cachedRuns struct {
	runs []BatchRun
	at   time.Time
}

type runsCache struct {
	Store
	ttl  time.Duration
	mu   sync.Mutex
	runs map[event.Kind]cachedRuns
}

func (c *runsCache) Runs(ctx context.Context, kind event.Kind) ([]BatchRun, error) {
	c.mu.Lock()
	cr, ok := c.runs[kind]
	c.mu.Unlock()
	if ok && time.Since(cr.at) < c.ttl {
		return cr.runs, nil
	}
	runs, err := c.Store.Runs(ctx, kind)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.runs[kind] = cachedRuns{runs: runs, at: time.Now()}
	c.mu.Unlock()
	return runs, nil
}
