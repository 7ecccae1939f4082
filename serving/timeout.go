package serving

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

// ErrTimeout is wrapped by the errors of store calls that ran out of time
// under WithTimeout.
var ErrTimeout = errors.New("serving: store call timed out")

// IsTimeout reports whether err is a store call that ran out of time: the
// store is slow or unreachable, and a later call may succeed (HTTP 503).
func IsTimeout(err error) bool { return errors.Is(err, ErrTimeout) }

// WithTimeout returns a Store whose read calls (Counts, Users, Late, Apps,
// Versions, Catalog, Runs) each get at most d; a call that runs out of
// time returns an error wrapping ErrTimeout, whatever the driver said,
// instead of hanging the caller. Writers, RecordRun and Close pass
// through: the serving side does not write.
func WithTimeout(s Store, d time.Duration) Store { return &timeoutStore{Store: s, d: d} }

type timeoutStore struct {
	Store
	d time.Duration
}

// call runs fn under the timeout and classifies its error.
func call[T any](ts *timeoutStore, ctx context.Context, name string, fn func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, ts.d)
	defer cancel()
	v, err := fn(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		var zero T
		return zero, fmt.Errorf("%w: %s after %v: %v", ErrTimeout, name, ts.d, err)
	}
	return v, err
}

func (ts *timeoutStore) Counts(ctx context.Context, layer Layer, q CountQuery) ([]CountPoint, error) {
	return call(ts, ctx, "counts", func(ctx context.Context) ([]CountPoint, error) { return ts.Store.Counts(ctx, layer, q) })
}

func (ts *timeoutStore) Users(ctx context.Context, layer Layer, q UserQuery) ([]aggregate.UserRow, error) {
	return call(ts, ctx, "users", func(ctx context.Context) ([]aggregate.UserRow, error) { return ts.Store.Users(ctx, layer, q) })
}

func (ts *timeoutStore) Late(ctx context.Context, q CountQuery) ([]CountPoint, error) {
	return call(ts, ctx, "late", func(ctx context.Context) ([]CountPoint, error) { return ts.Store.Late(ctx, q) })
}

func (ts *timeoutStore) Catalog(ctx context.Context, layer Layer, kind event.Kind, from, to time.Time) ([]AppVersion, error) {
	return call(ts, ctx, "catalog", func(ctx context.Context) ([]AppVersion, error) { return ts.Store.Catalog(ctx, layer, kind, from, to) })
}

func (ts *timeoutStore) Runs(ctx context.Context, kind event.Kind) ([]BatchRun, error) {
	return call(ts, ctx, "runs", func(ctx context.Context) ([]BatchRun, error) { return ts.Store.Runs(ctx, kind) })
}
