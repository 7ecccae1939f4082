package serving

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

// CacheOptions configure NewReadCache.
type CacheOptions struct {
	// RunsTTL is how long a read of batch_runs is reused: a finished batch
	// run shows at the first request after the next read. Zero reads it
	// for every query.
	RunsTTL time.Duration
	// SpeedTTL is how long a speed-layer read is reused (zero: never). It
	// should not exceed the stream's firing interval.
	SpeedTTL time.Duration
	// MaxBytes bounds the cached rows, by their size in memory (zero: no
	// read is cached; the runs still are).
	MaxBytes int64
}

// ReadCache is a Store that answers repeated reads from memory, without
// ever answering differently from the store but for the bounds below:
//
//   - A batch read (Counts or Users of the batch layer) is kept under its
//     query and the state of batch_runs of its kind as last read (Runs). A
//     batch run records itself in batch_runs after its rows are written,
//     so any run changes the state, and with it the key: the answer after
//     that read is the store's, by construction, never an older one. While
//     a run of the kind is running, its batch reads are not cached.
//   - A speed read (Counts, Users, Late of the speed layer) is kept for at
//     most SpeedTTL, and WithReadAges tells a caller how old what it was
//     given is.
//   - Runs are re-read every RunsTTL.
//
// What is kept is bounded by MaxBytes (the rows' size in memory); the least
// useful entries go first. Identical misses that arrive together read the
// store once. Entries are copied out, so callers may change what they get.
type ReadCache struct {
	Store
	opts  CacheOptions
	reads *otter.Cache[readKey, readEntry]

	mu   sync.Mutex
	runs map[event.Kind]runsState
	gen  uint64
	sf   singleflight.Group
}

type runsState struct {
	runs    []BatchRun
	at      time.Time
	gen     uint64 // changes whenever the rows change
	running bool   // a run of the kind is running: batch reads are not cached
}

type readKey struct {
	layer    Layer
	what     uint8 // counts, users or late
	kind     event.Kind
	gran     aggregate.Granularity
	app, ver string
	from, to int64
	gen      uint64 // batch: the runs state read at
}

const (
	readCounts uint8 = iota + 1
	readUsers
	readLate
)

type readEntry struct {
	counts []CountPoint
	users  []aggregate.UserRow
	at     time.Time // when the store was read
}

// NewReadCache returns s behind a read cache.
func NewReadCache(s Store, o CacheOptions) *ReadCache {
	c := &ReadCache{Store: s, opts: o, runs: map[event.Kind]runsState{}}
	if o.MaxBytes > 0 {
		c.reads = otter.Must(&otter.Options[readKey, readEntry]{
			MaximumWeight: uint64(o.MaxBytes),
			Weigher: func(k readKey, e readEntry) uint32 {
				n := 96 + len(k.app) + len(k.ver) + 48*len(e.counts)
				for _, u := range e.users {
					n += 96 + len(u.AppID) + len(u.AppVersion) + len(u.Sketch)
				}
				return uint32(min(n, 1<<31))
			},
			ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[readKey, readEntry]) time.Duration {
				if e.Key.layer == Speed {
					return o.SpeedTTL
				}
				return 24 * time.Hour // superseded by a new key at the next run long before
			}),
		})
	}
	return c
}

// Runs answers from the last read of kind's batch_runs if it is at most
// RunsTTL old, else reads it again.
func (c *ReadCache) Runs(ctx context.Context, kind event.Kind) ([]BatchRun, error) {
	c.mu.Lock()
	st, ok := c.runs[kind]
	c.mu.Unlock()
	if ok && c.opts.RunsTTL > 0 && time.Since(st.at) < c.opts.RunsTTL {
		return st.runs, nil
	}
	st, err := c.readRuns(ctx, kind)
	return st.runs, err
}

// readRuns reads kind's batch_runs (one read for callers that arrive
// together) and records the new state.
func (c *ReadCache) readRuns(ctx context.Context, kind event.Kind) (runsState, error) {
	v, err, _ := c.sf.Do(kind.String(), func() (any, error) {
		runs, err := c.Store.Runs(ctx, kind)
		if err != nil {
			return runsState{}, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.runs[kind]
		if st.runs == nil || !reflect.DeepEqual(st.runs, runs) {
			c.gen++
			st.gen = c.gen
		}
		st.runs, st.at, st.running = runs, time.Now(), false
		for _, r := range runs {
			// A run that started over a day and a half ago and still says
			// running was killed: it writes no more rows.
			st.running = st.running || (r.Status == RunRunning && time.Since(r.Started) < 36*time.Hour)
		}
		c.runs[kind] = st
		return st, nil
	})
	if err != nil {
		return runsState{}, err
	}
	return v.(runsState), nil
}

// batchGen returns the runs state a batch read of kind is keyed by: the
// last one read (a query reads Runs before the rows, so that is the state
// it merges at), and false if the read must not be cached.
func (c *ReadCache) batchGen(ctx context.Context, kind event.Kind) (uint64, bool, error) {
	c.mu.Lock()
	st, ok := c.runs[kind]
	c.mu.Unlock()
	if !ok {
		var err error
		if st, err = c.readRuns(ctx, kind); err != nil {
			return 0, false, err
		}
	}
	return st.gen, !st.running, nil
}

// get answers k from the cache, or by load, and records the age of a
// speed answer in ctx's ReadAges.
//
// A cached load runs without the caller's cancellation (the store calls
// keep their own time limits): callers that wait for the same load must
// not fail because the first one went away.
func (c *ReadCache) get(ctx context.Context, k readKey, load func(context.Context) (readEntry, error)) (readEntry, error) {
	cacheable := c.reads != nil && (k.layer == Batch || c.opts.SpeedTTL > 0)
	if k.layer == Batch && cacheable {
		gen, ok, err := c.batchGen(ctx, k.kind)
		if err != nil {
			return readEntry{}, err
		}
		k.gen, cacheable = gen, ok
	}
	var e readEntry
	var err error
	if cacheable {
		e, err = c.reads.Get(ctx, k, otter.LoaderFunc[readKey, readEntry](func(context.Context, readKey) (readEntry, error) {
			return load(context.WithoutCancel(ctx))
		}))
	} else {
		e, err = load(ctx)
	}
	if err != nil {
		return readEntry{}, err
	}
	if k.layer == Speed {
		if a := readAgesOf(ctx); a != nil {
			a.note(e.at)
		}
	}
	return e, nil
}

// bucketRange is the range of bucket starts of granularity g in [from,
// to]: what a read of that range answers. Queries that differ only within
// a bucket (a dashboard's "the last hour", asked every few seconds) share
// their key.
func bucketRange(g aggregate.Granularity, from, to time.Time) (int64, int64) {
	f, t := from.UnixMilli(), to.UnixMilli()
	first := g.Truncate(f)
	if first < f {
		first += g.Millis()
	}
	return first, g.Truncate(t)
}

func (c *ReadCache) Counts(ctx context.Context, layer Layer, q CountQuery) ([]CountPoint, error) {
	from, to := bucketRange(q.Gran, q.From, q.To)
	k := readKey{layer: layer, what: readCounts, kind: q.Kind, gran: q.Gran, app: q.AppID, ver: q.Version, from: from, to: to}
	e, err := c.get(ctx, k, func(ctx context.Context) (readEntry, error) {
		at := time.Now()
		pts, err := c.Store.Counts(ctx, layer, q)
		return readEntry{counts: pts, at: at}, err
	})
	return slices.Clone(e.counts), err
}

func (c *ReadCache) Users(ctx context.Context, layer Layer, q UserQuery) ([]aggregate.UserRow, error) {
	from, to := bucketRange(aggregate.Day, q.From, q.To)
	k := readKey{layer: layer, what: readUsers, kind: q.Kind, app: q.AppID, ver: q.Version, from: from, to: to}
	e, err := c.get(ctx, k, func(ctx context.Context) (readEntry, error) {
		at := time.Now()
		rows, err := c.Store.Users(ctx, layer, q)
		return readEntry{users: rows, at: at}, err
	})
	// The sketches' bytes are shared: readers unmarshal them, never change them.
	return slices.Clone(e.users), err
}

func (c *ReadCache) Late(ctx context.Context, q CountQuery) ([]CountPoint, error) {
	from, to := bucketRange(q.Gran, q.From, q.To)
	k := readKey{layer: Speed, what: readLate, kind: q.Kind, gran: q.Gran, app: q.AppID, ver: q.Version, from: from, to: to}
	e, err := c.get(ctx, k, func(ctx context.Context) (readEntry, error) {
		at := time.Now()
		pts, err := c.Store.Late(ctx, q)
		return readEntry{counts: pts, at: at}, err
	})
	return slices.Clone(e.counts), err
}

// CachedBytes is the size of what the cache holds, as MaxBytes counts it.
func (c *ReadCache) CachedBytes() int64 {
	if c.reads == nil {
		return 0
	}
	c.reads.CleanUp() // evictions still pending
	return int64(c.reads.WeightedSize())
}

// ReadAges records the oldest speed-layer read an answer was made of.
type ReadAges struct {
	mu     sync.Mutex
	oldest time.Time
}

type readAgesKey struct{}

// WithReadAges returns a context in which a ReadCache records how old the
// speed reads it answers are.
func WithReadAges(ctx context.Context) (context.Context, *ReadAges) {
	a := &ReadAges{}
	return context.WithValue(ctx, readAgesKey{}, a), a
}

func readAgesOf(ctx context.Context) *ReadAges {
	a, _ := ctx.Value(readAgesKey{}).(*ReadAges)
	return a
}

func (a *ReadAges) note(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.oldest.IsZero() || at.Before(a.oldest) {
		a.oldest = at
	}
}

// Oldest is when the oldest speed read of the answer was made, and false
// if it used none.
func (a *ReadAges) Oldest() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.oldest, !a.oldest.IsZero()
}
