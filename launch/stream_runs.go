package launch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
)

// StreamRun is a run of the stream as recorded in its store: where it
// started, what it took over, and, after a drained stop, where it ended.
type StreamRun struct {
	store string
	Run   serving.StreamRun
	Plan  serving.StreamStart
}

// StartStream plans where the stream starts so that the speed tables count
// every event once (DESIGN §3, streaming): it resolves cfg's --start to
// offsets, plans them against the runs recorded in cfg.Store
// (serving.PlanStreamStart), records the new run and marks the runs it
// takes over as superseded, and sets cfg.Kafka.StartOffsets. Call it
// before BuildStream, and pass the result to RunStream, which records
// where a drained run ended.
//
// A replay (--start=earliest or a time, or committed after a kill) that
// reads again what an earlier run counted supersedes that run: its rows
// drop out of the speed reads, and the replay counts those events once.
// Where a requested start would cut through an earlier run, the start
// moves back to that run's start, and the log says so.
func StartStream(ctx context.Context, cfg *pipelines.StreamConfig) (*StreamRun, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := serving.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("launch: stream runs: %w", err)
	}
	defer st.Close()
	// Forget the runs with no speed row left: one row per run would
	// otherwise pile up for ever.
	if n, err := st.PruneStreamRuns(ctx, time.Now()); err != nil {
		slog.Warn("launch: could not forget expired stream runs; the next start tries again", "err", err)
	} else if n > 0 {
		slog.Info("launch: forgot stream runs whose speed rows have all expired", "runs", n)
	}
	runs, err := st.StreamRuns(ctx)
	if err != nil {
		return nil, err
	}
	pos, err := kafkaio.ResolveStart(ctx, cfg.Kafka)
	if err != nil {
		return nil, err
	}
	plan := serving.PlanStreamStart(pos.Requested, pos.Earliest, pos.Head, runs, cfg.Kafka.Start == kafkaio.StartLatest)
	r := &StreamRun{store: cfg.Store, Plan: plan,
		Run: serving.StreamRun{ID: cfg.Run, Started: time.Now().UTC(), Start: plan.Start}}
	for _, old := range runs {
		if old.ID == cfg.Run {
			return nil, fmt.Errorf("launch: the store already holds a stream run named %q: give each run its own name", cfg.Run)
		}
	}
	// The new run first: should the launcher die before the job starts, a
	// later plan takes this run over too, and with it what it superseded.
	if err := st.RecordStreamRun(ctx, r.Run); err != nil {
		return nil, err
	}
	for _, old := range runs {
		if slices.Contains(plan.Superseded, old.ID) {
			old.SupersededBy = cfg.Run
			if err := st.RecordStreamRun(ctx, old); err != nil {
				return nil, err
			}
		}
	}
	cfg.Kafka.StartOffsets = plan.Start
	if len(plan.Superseded) > 0 {
		slog.Warn("launch: this run reads again what earlier runs counted, and takes them over: their rows leave the speed reads, "+
			"and until this run has caught up the speed layer shows less", "run", cfg.Run, "superseded", plan.Superseded,
			"start_moved_back", plan.Extended)
	}
	if len(plan.Expired) > 0 {
		slog.Warn("launch: events the superseded runs counted are no longer in Kafka (retention): the speed layer no longer counts them; the batch layer does",
			"offsets_per_partition", plan.Expired)
	}
	return r, nil
}

// drained records where the run's readers stopped after a drain.
func (r *StreamRun) drained(ctx context.Context, ends kafkaio.Offsets) error {
	st, err := serving.Open(ctx, r.store)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Run.End = ends
	if r.Run.End == nil {
		r.Run.End = kafkaio.Offsets{}
	}
	// A partition the run started at but read nothing of ends where it
	// started.
	for p, o := range r.Run.Start {
		if _, ok := r.Run.End[p]; !ok {
			r.Run.End[p] = o
		}
	}
	return st.RecordStreamRun(ctx, r.Run)
}
