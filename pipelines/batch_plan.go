package pipelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/winstate"
)

func init() {
	register.DoFn5x1[context.Context, []byte, func(batchUnit), func(statePlan), func(KindStats), error](&planFn{})
	register.Emitter1[batchUnit]()
}

// batchUnit is a work unit of the batch read: some or all raw files of one
// arrival partition, or several partitions to take from their rollups.
type batchUnit struct {
	ID int
	// A raw unit: files (or splits of them) of one partition, with the
	// partition's whole manifest, and its rollup files that the new one
	// will replace.
	Partition string // raw.Partition.String()
	Splits    []raw.FileSplit
	Manifest  rollup.Manifest
	Stale     []string
	// Unversioned: the listing gives a file of the partition no version
	// (blob.FileInfo.Version), so no rollup can prove it covers the same
	// content; the partition is neither taken from nor written to one.
	Unversioned bool
	// A rollup unit.
	Rollups []rollupTask
	// A listing unit: listed files whose path is not in the raw layout
	// (raw.ParsePath), to become dead letters of the listing.
	BadPaths []badPath
	// Only: the partition is read for these days (Unix ms) of the window
	// alone, which the run recomputes (statePlan.Recompute); its counters
	// are the state's, and it gives none.
	Only []int64
}

// badPath is a listed .avro file that is not at
// raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>: it belongs to no partition, so it
// is a dead letter (raw.ReasonBadPath) of its kind's listing, not a failure
// of the job.
type badPath struct {
	Kind   event.Kind
	Path   string
	Detail string
}

// rollupTask is a partition whose listing matches its rollup's name. The
// rollup is still checked when it is read; the partition's files come
// along, to be read instead if it cannot be used.
type rollupTask struct {
	Partition string
	Path      string
	Manifest  rollup.Manifest
	Files     []raw.FileSplit
	Stale     []string
	Only      []int64 // as batchUnit.Only
}

// rollupsPerUnit is how many rollups one unit reads (concurrently): a
// day's worth of hourly ones.
const rollupsPerUnit = 24

// planFn lists the window's raw partitions and their rollups, decides
// about the window state, and plans the read.
//
// With a state that may stand for the window (stateCheck, planState), the
// run extends it: the partitions it holds unchanged are not read at all,
// new and changed ones are, and the days a changed, gone or departed
// partition touched are recomputed from every partition touching them.
// Without one, every partition is read: a partition whose raw listing
// still matches its rollup is taken from the rollup, any other (new,
// changed, or without a rollup) from its raw files. A partition whose
// listing gives no object versions (gs://, or any filesystem whose listing
// has no versions or ETags) is always read from raw: its size alone cannot
// tell that a file was not replaced. It runs once, on the impulse: listing
// happens inside the job, so a submitted job needs no access to the input
// from the launcher.
type planFn struct {
	fileSetup
	Root, RollupRoot string
	First, Last      time.Time
	Grain            raw.Grain
	Full, NoRollups  bool
	Opts             raw.PlanOptions
	Stamp            int64 // the run's (BatchConfig.Stamp), keying its Progress
	// Where the store's window states live (winstate.Root; "" with
	// NoRollups), and what a state must agree with.
	StateRoot   string
	Started     time.Time
	WindowDays  int
	Precision   uint8
	NowMs       int64
	MaxFutureMs int64
	// VerifyNew lists only the arrival days after the state's
	// (BatchConfig.Verify "new").
	VerifyNew bool
}

func (f *planFn) ProcessElement(ctx context.Context, _ []byte, emit func(batchUnit), emitPlan func(statePlan), emitStats func(KindStats)) error {
	if f.StateRoot != "" {
		// Before anything is written: a later run trusts no state older
		// than this mark.
		if err := winstate.MarkStart(ctx, f.StateRoot, f.Started, f.Stamp); err != nil {
			return fmt.Errorf("pipelines: %w (or run with --no_rollups)", err)
		}
	}
	// The newest state, read once, if the run may extend one.
	var found winstate.State
	findErr := errNoState
	if !f.Full && !f.NoRollups {
		found, findErr = f.check().find(ctx)
	}
	listFirst := f.First
	if f.VerifyNew && findErr == nil && found.AsOf.Before(f.Last) {
		// Only the arrival days after the state's are listed; the state's
		// own are taken as they were. Any doubt lists the window.
		listFirst = maxTime(f.First, found.AsOf.AddDate(0, 0, 1))
	}
	l, err := f.list(ctx, listFirst)
	if err != nil {
		return err
	}
	if listFirst.After(f.First) {
		for _, part := range found.Parts {
			if !part.Partition.Day.Before(f.First) && part.Partition.Day.Before(listFirst) {
				l.listing[part.Partition] = part.Hash
			}
		}
	}
	plan, actions := f.planState(ctx, l.listing, found, findErr)
	if listFirst.After(f.First) && (plan.Mode != stateUsed || len(plan.Recompute) > 0) {
		// Days of the state are recomputed, and need their files listed.
		slog.Warn("batch: --verify=new: the state does not stand for the old days as they are; listing the whole window")
		listFirst = f.First
		if l, err = f.list(ctx, listFirst); err != nil {
			return err
		}
		plan, actions = f.planState(ctx, l.listing, found, findErr)
	}
	plan.VerifiedFrom = listFirst
	files, byPart, manifests, parts, bad := l.files, l.byPart, l.manifests, l.parts, l.bad
	existing := map[raw.Partition][]string{}
	switch {
	case f.NoRollups:
	case plan.Mode == stateUsed:
		// The rollups of the partitions the state holds are not read.
		var days []raw.Partition
		seen := map[raw.Partition]bool{}
		for _, p := range parts {
			if day := (raw.Partition{Kind: p.Kind, Day: p.Day, Hour: -1}); actions[p] != skipPart && !seen[day] {
				seen[day] = true
				days = append(days, day)
			}
		}
		if existing, err = rollup.ListDays(ctx, f.RollupRoot, days, f.Opts.ListConcurrency); err != nil {
			return fmt.Errorf("pipelines: %w", err)
		}
	default:
		if existing, err = rollup.List(ctx, f.RollupRoot, f.First, f.Last, f.Opts.ListConcurrency); err != nil {
			return fmt.Errorf("pipelines: %w", err)
		}
	}
	emitPlan(plan)
	for _, kept := range plan.Kept {
		emitStats(partStats(kept, aggregate.DayWindow{First: f.First, Last: f.Last}))
	}

	var units []batchUnit
	var tasks []rollupTask
	fromRaw, unversioned := 0, 0
	for _, p := range parts {
		var only []int64
		switch actions[p] {
		case skipPart:
			continue
		case readDays:
			only = plan.Recompute
		}
		m := manifests[p]
		if !versioned(m) {
			unversioned++
			fromRaw++
			opts := f.Opts
			opts.Parallelism = 1
			for _, u := range raw.Pack(byPart[p], opts) {
				units = append(units, batchUnit{Partition: p.String(), Splits: u.Splits, Manifest: m, Unversioned: true})
			}
			continue
		}
		want := rollup.Path(f.RollupRoot, p, m)
		var stale []string
		found := false
		// Rollups of the other grain for the same kind and day are stale
		// too: written before --rollup_grain changed, never to be read.
		other := raw.Partition{Kind: p.Kind, Day: p.Day, Hour: -1}
		if p.Hour < 0 {
			for h := range 24 {
				other.Hour = h
				stale = append(stale, existing[other]...)
			}
		} else {
			stale = append(stale, existing[other]...)
		}
		for _, path := range existing[p] {
			if path == want {
				found = true
			} else {
				stale = append(stale, path)
			}
		}
		if found && !f.Full {
			tasks = append(tasks, rollupTask{Partition: p.String(), Path: want, Manifest: m, Files: byPart[p], Stale: stale, Only: only})
			continue
		}
		fromRaw++
		// A partition is packed on its own, so its aggregates stay apart:
		// usually one unit, more if it is larger than a unit.
		opts := f.Opts
		opts.Parallelism = 1
		for _, u := range raw.Pack(byPart[p], opts) {
			units = append(units, batchUnit{Partition: p.String(), Splits: u.Splits, Manifest: m, Stale: stale, Only: only})
		}
	}
	for lo := 0; lo < len(tasks); lo += rollupsPerUnit {
		units = append(units, batchUnit{Rollups: tasks[lo:min(lo+rollupsPerUnit, len(tasks))]})
	}
	if unversioned > 0 && !f.NoRollups {
		slog.Warn("batch: the listing gives no object versions, so rollups are neither reused nor written for these partitions",
			"input", f.Root, "partitions", unversioned)
	}
	if len(bad) > 0 {
		slog.Warn("batch: listed files outside the raw layout are dead letters", "files", len(bad), "first", bad[0].Path)
		units = append(units, batchUnit{BadPaths: bad})
	}
	pr := progressOf(f.Stamp)
	pr.planned.Add(int64(len(files)))
	pr.units.Add(int64(len(units)))
	c := "lumen.batch"
	beam.NewCounter(c, "files_listed").Inc(ctx, int64(len(files)))
	beam.NewCounter(c, "work_units").Inc(ctx, int64(len(units)))
	beam.NewCounter(c, "partitions_planned_from_raw").Inc(ctx, int64(fromRaw))
	beam.NewCounter(c, "partitions_planned_from_rollups").Inc(ctx, int64(len(tasks)))
	beam.NewCounter(c, "partitions_from_state").Inc(ctx, int64(len(plan.Kept)))
	for i := range units {
		units[i].ID = i
		emit(units[i])
	}
	return nil
}

// windowListing is the raw listing of arrival days [first, f.Last], by
// partition.
type windowListing struct {
	files     []raw.FileSplit
	byPart    map[raw.Partition][]raw.FileSplit
	manifests map[raw.Partition]rollup.Manifest
	listing   map[raw.Partition]string // the manifest's hash; "" without versions
	parts     []raw.Partition          // sorted
	bad       []badPath
}

func (f *planFn) list(ctx context.Context, first time.Time) (windowListing, error) {
	files, err := raw.ListWindow(ctx, f.Root, first, f.Last, f.Opts)
	if err != nil {
		// Listing failures are transient or a misconfiguration; either way
		// the run must not succeed on a partial listing. Beam retries the
		// bundle, then fails the job.
		return windowListing{}, fmt.Errorf("pipelines: %w", err)
	}
	l := windowListing{files: files, byPart: map[raw.Partition][]raw.FileSplit{}, manifests: map[raw.Partition]rollup.Manifest{},
		listing: map[raw.Partition]string{}}
	for _, fs := range files {
		p, err := raw.PartitionOf(fs.Path, f.Grain)
		if err != nil {
			l.bad = append(l.bad, badPath{Kind: fs.Kind, Path: fs.Path, Detail: err.Error()})
			continue
		}
		l.byPart[p] = append(l.byPart[p], fs)
	}
	for p := range l.byPart {
		l.parts = append(l.parts, p)
		m := rollup.NewManifest(l.byPart[p])
		l.manifests[p] = m
		if versioned(m) {
			l.listing[p] = m.Hash()
		} else {
			l.listing[p] = ""
		}
	}
	slices.SortFunc(l.parts, raw.Partition.Compare)
	return l, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// check is what a state must agree with to stand for this run's window.
func (f *planFn) check() stateCheck {
	return stateCheck{Root: f.StateRoot, AsOf: f.Last, First: f.First, WindowDays: f.WindowDays, Precision: f.Precision,
		Grain: f.Grain, Started: f.Started, Stamp: f.Stamp, NowMs: f.NowMs, MaxFutureMs: f.MaxFutureMs}
}

// planState decides the run's state mode, from the state found (or
// findErr, why none was) and the listing. A state that cannot be trusted
// is a warning and a counter, and the run rebuilds one.
func (f *planFn) planState(ctx context.Context, listing map[raw.Partition]string, s winstate.State, findErr error) (statePlan, map[raw.Partition]partAction) {
	switch {
	case f.NoRollups:
		return statePlan{Mode: stateFull, Reason: "--no_rollups"}, nil
	case f.Full:
		return statePlan{Mode: stateFull, Reason: "--full", Root: f.StateRoot}, nil
	}
	c := f.check()
	rebuild := func(err error) (statePlan, map[raw.Partition]partAction) {
		if errors.Is(err, errNoState) {
			return statePlan{Mode: stateRebuilt, Reason: "no window state overlaps the window", Root: f.StateRoot}, nil
		}
		slog.Warn("batch: the window state cannot be used; the run merges the rollups instead", "reason", err)
		beam.NewCounter("lumen.batch", "states_rejected").Inc(ctx, 1)
		return statePlan{Mode: stateRebuilt, Rejected: true, Reason: err.Error(), Root: f.StateRoot}, nil
	}
	if findErr != nil {
		return rebuild(findErr)
	}
	plan, actions, err := planState(c, s, listing)
	if err != nil {
		return rebuild(err)
	}
	return plan, actions
}

// versioned reports whether the listing gave every object of m a version.
func versioned(m rollup.Manifest) bool {
	for _, o := range m {
		if o.Version == "" {
			return false
		}
	}
	return true
}
