package launch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/pipelines"
)

// Retained is what a batch run's retention deleted.
type Retained struct {
	RollupFiles, DeadLetterFiles int
}

// RetainBatch deletes what a batch run as of cfg.AsOf that succeeded no
// longer needs, and what has outlived its lifetime:
//
//   - the rollups of arrival days before the run's window: no run as of
//     AsOf or later reads them (an older re-run reads those days from raw);
//   - the run's dead-letter days (deadletter/batch/dt=…) more than
//     deadLetterRetention before AsOf; 0 keeps them all.
//
// Raw files are never deleted: they are the input of every repair. A run
// that failed must not call it.
func RetainBatch(ctx context.Context, cfg pipelines.BatchConfig, deadLetterRetention time.Duration) (Retained, error) {
	cfg.EnsureDefaults()
	var r Retained
	window := aggregate.NewDayWindow(cfg.AsOf, cfg.WindowDays)
	for _, k := range event.Kinds {
		n, err := blob.RemoveDaysBefore(ctx, fmt.Sprintf("%s/rollup/%s/", strings.TrimSuffix(cfg.RollupRoot, "/"), k), window.First)
		r.RollupFiles += n
		if err != nil {
			return r, fmt.Errorf("launch: retention of %s rollups: %w", k, err)
		}
	}
	if deadLetterRetention > 0 {
		before := cfg.AsOf.Add(-deadLetterRetention).UTC().Truncate(24 * time.Hour)
		n, err := blob.RemoveDaysBefore(ctx, strings.TrimSuffix(cfg.DeadLetterRoot, "/")+"/deadletter/batch/", before)
		r.DeadLetterFiles += n
		if err != nil {
			return r, fmt.Errorf("launch: retention of dead letters: %w", err)
		}
	}
	return r, nil
}
