package cassandraio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Mutation is one row write: a CQL statement with ? placeholders (the
// driver prepares it once and binds values; nothing is ever formatted into
// CQL) and its values.
type Mutation struct {
	Stmt string
	Args []any
	// Partition groups mutations into unlogged batches: only rows of the
	// same partition are batched, so a batch is one replica set's work.
	Partition string
	// Bytes approximates the row's size, for byte_rate and batch_bytes.
	Bytes int
}

// Writer writes mutations asynchronously through its Client's throttle and
// in-flight bound. It is for one goroutine (a Beam bundle); the throttle
// and bound it draws on are the process's.
//
// Errors surface on the next Write and on Flush: a write that still fails
// after the retry budget fails the caller, which fails the bundle, so the
// runner retries it or the job fails; writes are upserts, so a re-run
// completes the data.
type Writer struct {
	c       *Client
	groups  map[string]*group
	pending int

	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	stats WriterStats

	retries atomic.Int64
}

// WriterStats are one Writer's counters, for per-bundle metrics.
type WriterStats struct {
	Rows         int64
	Failures     int64         // requests that failed after every retry
	Retries      int64         // retryable failed attempts
	ThrottleWait time.Duration // time spent waiting for the throttle
}

type group struct {
	muts  []Mutation
	bytes int
}

// NewWriter returns a Writer.
func (c *Client) NewWriter() *Writer { return &Writer{c: c, groups: map[string]*group{}} }

// Write queues m, sending its partition's batch when it is full.
func (w *Writer) Write(ctx context.Context, m Mutation) error {
	if err := w.firstErr(); err != nil {
		return err
	}
	g := w.groups[m.Partition]
	if g == nil {
		g = &group{}
		w.groups[m.Partition] = g
	}
	g.muts = append(g.muts, m)
	g.bytes += m.Bytes
	w.pending++
	cfg := &w.c.cfg
	if len(g.muts) >= cfg.BatchRows || g.bytes >= cfg.BatchBytes {
		delete(w.groups, m.Partition)
		w.pending -= len(g.muts)
		if err := w.dispatch(ctx, g); err != nil {
			return err
		}
	}
	// Many partitions with a row or two each: do not hold them all.
	if w.pending >= cfg.BatchRows*cfg.MaxInFlight {
		return w.dispatchAll(ctx)
	}
	return nil
}

func (w *Writer) dispatchAll(ctx context.Context) error {
	for p, g := range w.groups {
		delete(w.groups, p)
		if err := w.dispatch(ctx, g); err != nil {
			return err
		}
	}
	w.pending = 0
	return nil
}

// Flush sends everything queued and waits for every write in flight.
func (w *Writer) Flush(ctx context.Context) error {
	err := w.dispatchAll(ctx)
	w.wg.Wait()
	return errors.Join(err, w.firstErr())
}

func (w *Writer) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// dispatch waits for the throttle and an in-flight slot, then sends g.
func (w *Writer) dispatch(ctx context.Context, g *group) error {
	c := w.c
	waited, err := c.throttle.Wait(ctx, len(g.muts), g.bytes)
	c.waitNanos.Add(int64(waited))
	w.mu.Lock()
	w.stats.ThrottleWait += waited
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cassandraio: throttle: %w", err)
	}
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	n := c.inFlight.Add(1)
	for {
		peak := c.peakInFlight.Load()
		if n <= peak || c.peakInFlight.CompareAndSwap(peak, n) {
			break
		}
	}
	w.wg.Add(1)
	go func() {
		defer func() {
			c.inFlight.Add(-1)
			<-c.inflight
			w.wg.Done()
		}()
		start := time.Now()
		cfg := &c.cfg
		err := withRetries(ctx, cfg.Retries, cfg.RetryMin, cfg.RetryMax, c.throttle,
			func() { c.retries.Add(1); w.retries.Add(1) },
			func() error { return w.exec(ctx, g.muts) })
		if err != nil {
			c.failures.Add(1)
			w.mu.Lock()
			w.stats.Failures++
			if w.err == nil {
				w.err = &WriteError{Rows: len(g.muts), Partition: g.muts[0].Partition, Retryable: IsRetryable(err),
					Took: time.Since(start), Err: err}
			}
			w.mu.Unlock()
			return
		}
		c.rows.Add(int64(len(g.muts)))
		c.batches.Add(1)
		w.mu.Lock()
		w.stats.Rows += int64(len(g.muts))
		w.mu.Unlock()
	}()
	return nil
}

func (w *Writer) exec(ctx context.Context, muts []Mutation) error {
	c := w.c
	// No driver retries: the caller retries the whole request with backoff.
	if len(muts) == 1 {
		return c.session.Query(muts[0].Stmt, muts[0].Args...).WithContext(ctx).Consistency(c.cfg.Consistency).Idempotent(true).Exec()
	}
	b := c.session.Batch(gocql.UnloggedBatch).WithContext(ctx).Consistency(c.cfg.Consistency)
	for _, m := range muts {
		b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: m.Stmt, Args: m.Args, Idempotent: true})
	}
	return b.Exec()
}

// Stats returns the writer's counters so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Retries = w.retries.Load()
	return st
}

// WriteError is a write that failed after the retry budget.
type WriteError struct {
	Rows      int
	Partition string
	Retryable bool // the cause was transient: re-running will complete the data
	Took      time.Duration
	Err       error
}

func (e *WriteError) Error() string {
	hint := ""
	if e.Retryable {
		hint = " (Cassandra stayed unavailable past the retry budget; writes are upserts, so re-running completes the data)"
	}
	return fmt.Sprintf("cassandraio: write of %d rows to partition %s failed after %v and every retry: %v%s", e.Rows, e.Partition, e.Took.Round(time.Millisecond), e.Err, hint)
}

func (e *WriteError) Unwrap() error { return e.Err }
