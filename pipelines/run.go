package pipelines

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"
)

// RunStream runs a streaming pipeline on the configured runner (the
// --runner flag; prism by default) until ctx is cancelled, which is how a
// stream stops. A stop is not a failure: RunStream then returns nil.
//
// An in-process prism (2.77) reports a cancelled job as failed: every
// bundle in flight is logged at ERROR as "Bundle Failed" with "context
// canceled", then "job failed". While a stop winds down, RunStream keeps
// those reports out of the process's log (slog's default logger), so a
// healthy run that is stopped logs no error. Errors before the stop are
// logged and returned as usual.
func RunStream(ctx context.Context, p *beam.Pipeline) error {
	installStopFilter()
	stop := context.AfterFunc(ctx, func() { stopping.Add(1) })
	err := beamx.Run(ctx, p)
	if !stop() {
		// The stop was counted: keep quiet while prism's goroutines
		// finish reporting it, then stop filtering.
		time.AfterFunc(5*time.Second, func() { stopping.Add(-1) })
		return nil
	}
	return err
}

// stopping counts streams winding down after a deliberate stop.
var stopping atomic.Int32

var stopFilterOnce sync.Once

func installStopFilter() {
	stopFilterOnce.Do(func() {
		slog.SetDefault(slog.New(stopFilter{slog.Default().Handler()}))
	})
}

// stopFilter drops warnings and errors while a stream is being stopped.
type stopFilter struct{ slog.Handler }

func (h stopFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && stopping.Load() > 0 {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h stopFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return stopFilter{h.Handler.WithAttrs(as)}
}

func (h stopFilter) WithGroup(name string) slog.Handler {
	return stopFilter{h.Handler.WithGroup(name)}
}
