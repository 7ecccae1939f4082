package pipelines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/winstate"
)

func init() {
	// Small and few: JSON is a fine coder. (Each type has functions of its
	// own: Beam names a coder's functions, and a generic one's
	// instantiations share a name.)
	beam.RegisterCoder(reflect.TypeOf(statePlan{}), encodeStatePlan, decodeStatePlan)
	beam.RegisterCoder(reflect.TypeOf(stateShard{}), encodeStateShard, decodeStateShard)
	beam.RegisterCoder(reflect.TypeOf(winstate.Part{}), encodePart, decodePart)
	beam.RegisterCoder(reflect.TypeOf(winstate.Shard{}), encodeShard, decodeShard)
	register.DoFn2x0[statePlan, func(stateShard)](&expandShardsFn{})
	register.DoFn4x1[context.Context, stateShard, func(aggregate.AppKey, aggregate.Agg), func(aggregate.AppKey, aggregate.Agg), error](&readShardFn{})
	register.Emitter1[stateShard]()
	register.Emitter1[winstate.Part]()
	register.Emitter1[winstate.Shard]()
	register.Emitter1[aggregate.CountRow]()
	register.Emitter1[aggregate.UserRow]()
	register.Emitter1[statePlan]()
}

// The state modes of a batch run (DESIGN §3, incremental identity).
const (
	// stateFull: --full, or no rollups: every partition read, every row
	// written, the window pruned; a state written.
	stateFull = "full"
	// stateRebuilt: no state could be trusted; every partition from its
	// rollup or raw, every row written, the window pruned; a state written.
	stateRebuilt = "rebuilt"
	// stateUsed: the previous state extended with what changed since;
	// only changed rows written, vanished ones deleted; a state written.
	stateUsed = "used"
)

// statePlan is what planFn decided about the window state, for the steps
// after it (as a side input or a main input of one element).
type statePlan struct {
	Mode string
	// Why no state was used; Rejected: one was found and not trusted.
	Reason   string
	Rejected bool
	// Root is where states live (the rollup root).
	Root string
	// Old is the state used (Mode stateUsed).
	Old winstate.State
	// Recompute are the days (Unix ms) of the window recomputed from every
	// partition that touches them, because a partition the state includes
	// changed, went, or left the window while touching them.
	Recompute []int64
	// Kept are the state's partitions that are unchanged and in the new
	// window: the new state includes them as they are.
	Kept []winstate.Part
	// VerifiedFrom is the first arrival day listed: the window's first,
	// unless --verify=new took the days before it from the state.
	VerifiedFrom time.Time
}

func (p statePlan) recomputes(day int64) bool { return slices.Contains(p.Recompute, day) }

// stateShard is one shard of the old state to read, with what to do with it.
type stateShard struct {
	Root        string
	State       winstate.State // its manifest (parts left out)
	Shard       winstate.Shard
	First, Last time.Time // the new window
	Recompute   []int64
}

func encodeStatePlan(v statePlan) ([]byte, error)   { return json.Marshal(v) }
func decodeStatePlan(b []byte) (statePlan, error)   { return decodeJSON[statePlan](b) }
func encodeStateShard(v stateShard) ([]byte, error) { return json.Marshal(v) }
func decodeStateShard(b []byte) (stateShard, error) { return decodeJSON[stateShard](b) }
func encodePart(v winstate.Part) ([]byte, error)    { return json.Marshal(v) }
func decodePart(b []byte) (winstate.Part, error)    { return decodeJSON[winstate.Part](b) }
func encodeShard(v winstate.Shard) ([]byte, error)  { return json.Marshal(v) }
func decodeShard(b []byte) (winstate.Shard, error)  { return decodeJSON[winstate.Shard](b) }
func encodeRowsDone(v rowsDone) ([]byte, error)     { return json.Marshal(v) }
func decodeRowsDone(b []byte) (rowsDone, error)     { return decodeJSON[rowsDone](b) }

func decodeJSON[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// stateCheck is how planFn decides whether the newest state may stand for
// the window: what the state must agree with.
type stateCheck struct {
	Root        string // the store's states (winstate.Root)
	AsOf        time.Time
	First       time.Time
	WindowDays  int
	Precision   uint8
	Grain       raw.Grain
	Started     time.Time // this run's
	Stamp       int64     // this run's
	NowMs       int64
	MaxFutureMs int64
}

// errNoState is a reason without a state: nothing was rejected.
var errNoState = errors.New("no state")

// find returns the newest state whose window overlaps the run's, read
// and checked, or why none can be trusted (errNoState: there is none).
func (c stateCheck) find(ctx context.Context) (winstate.State, error) {
	paths, err := winstate.Find(ctx, c.Root, c.First, c.AsOf)
	if err != nil {
		return winstate.State{}, err
	}
	if len(paths) == 0 {
		return winstate.State{}, errNoState
	}
	s, err := winstate.Read(ctx, paths[0])
	if err != nil {
		return winstate.State{}, err
	}
	switch {
	case s.WindowDays != c.WindowDays:
		return s, fmt.Errorf("%s is of a %d-day window, the run's is %d", paths[0], s.WindowDays, c.WindowDays)
	case s.Precision != c.Precision:
		return s, fmt.Errorf("%s has precision %d, the run's is %d", paths[0], s.Precision, c.Precision)
	case s.Grain != c.Grain:
		return s, fmt.Errorf("%s has %v partitions, the run's are %v", paths[0], s.Grain, c.Grain)
	}
	// The store must hold the state's rows: no run may have started since
	// the state's, and so may have written rows it does not know of (one
	// killed while writing, or a re-run of another day), but this one.
	marks, err := winstate.Marks(ctx, c.Root)
	if err != nil {
		return s, err
	}
	for _, m := range marks {
		if m.Started.After(s.Started) && !(m.Started.Equal(c.Started) && m.Stamp == c.Stamp) {
			return s, fmt.Errorf("%s is of the run started %s, and a run started %s (as of %s) may have written the window since",
				paths[0], s.Started.Format(time.RFC3339), m.Started.Format(time.RFC3339), time.UnixMilli((m.Stamp>>40)*86_400_000).UTC().Format(time.DateOnly))
		}
	}
	return s, nil
}

// partAction is what a run does with one listed partition.
type partAction uint8

const (
	readWhole partAction = iota // read it (new, or changed), cut to the window
	readDays                    // read it for the recomputed days only
	skipPart                    // the state holds it
)

// planState decides the state mode and, with a state, what becomes of
// every partition: the listed ones (listing: partition → its manifest
// hash, "" when the listing gives no versions) and those the state holds.
func planState(c stateCheck, s winstate.State, listing map[raw.Partition]string) (statePlan, map[raw.Partition]partAction, error) {
	p := statePlan{Mode: stateUsed, Root: c.Root, Old: s}
	actions := map[raw.Partition]partAction{}
	for part, hash := range listing {
		if hash == "" {
			return statePlan{}, nil, fmt.Errorf("the listing of %v gives no object versions: an unchanged partition cannot be told", part)
		}
		actions[part] = readWhole
	}
	first, last := c.First.UnixMilli(), c.AsOf.UnixMilli()
	inWindow := func(day int64) bool { return day >= first && day <= last }
	recompute := map[int64]bool{}
	touched := func(part winstate.Part) {
		for d := range part.Days {
			if inWindow(d) {
				recompute[d] = true
			}
		}
	}
	for _, part := range s.Parts {
		hash, listed := listing[part.Partition]
		switch {
		case part.Partition.Day.Before(c.First):
			touched(part) // left the window: what it adds to the window's days goes
		case listed && hash == part.Hash && part.Times.Holds(c.NowMs, time.Duration(c.MaxFutureMs)*time.Millisecond):
			actions[part.Partition] = skipPart
			p.Kept = append(p.Kept, part)
		default:
			touched(part) // changed, gone, or beyond the clock's bound now
		}
	}
	for d := range recompute {
		p.Recompute = append(p.Recompute, d)
	}
	slices.Sort(p.Recompute)
	if len(p.Recompute) > 0 {
		// Every partition that touches a recomputed day gives its part of
		// it; the state's part of those days is dropped.
		for _, part := range p.Kept {
			for d := range part.Days {
				if recompute[d] {
					actions[part.Partition] = readDays
					break
				}
			}
		}
	}
	return p, actions, nil
}

// expandShardsFn turns a plan that uses a state into its shards to read.
type expandShardsFn struct {
	First, Last time.Time
}

func (f *expandShardsFn) ProcessElement(p statePlan, emit func(stateShard)) {
	if p.Mode != stateUsed {
		return
	}
	head := p.Old
	head.Parts = nil
	for _, sh := range p.Old.Shards {
		emit(stateShard{Root: p.Root, State: head, Shard: sh, First: f.First, Last: f.Last, Recompute: p.Recompute})
	}
}

// readShardFn reads one shard of the old state and emits each key's
// aggregate cut to the window, in two disjoint parts: the days kept, and
// the days recomputed (from every partition that touches them). The
// state's data crosses the shuffle once, and is never re-merged by the
// combine: diffFn adds the new partitions' merge to the kept part.
type readShardFn struct {
	fileSetup
}

func (f *readShardFn) ProcessElement(ctx context.Context, t stateShard, emitKept, emitDropped func(aggregate.AppKey, aggregate.Agg)) error {
	aggs, err := winstate.ReadShard(ctx, t.Root, t.State, t.Shard)
	if err != nil {
		// planFn read the manifest; a shard that does not match it now is
		// damage after the plan (or a filesystem failure): fail, and the
		// run's retry, or the next run, decides again.
		return fmt.Errorf("pipelines: window state: %w", err)
	}
	window := aggregate.DayWindow{First: t.First, Last: t.Last}
	recomputed := func(day int64) bool { return slices.Contains(t.Recompute, day) }
	for k, a := range aggs {
		in, _, _ := a.Cut(window)
		if len(t.Recompute) == 0 {
			emitKept(k, in)
			continue
		}
		// Disjoint days: the two parts share no cell or sketch.
		dropped := in.KeepDays(recomputed)
		emitKept(k, in.KeepDays(func(day int64) bool { return !recomputed(day) }))
		if !dropped.IsZero() && dropped.Total() > 0 {
			emitDropped(k, dropped)
		}
	}
	return nil
}

// partStats are a kept partition's counters in the run's window, as
// cutWhole computes them for a partition read.
func partStats(p winstate.Part, window aggregate.DayWindow) KindStats {
	c := p.Counters
	st := KindStats{Kind: p.Partition.Kind, Files: c.Files, Bytes: c.Bytes, DeadLetters: c.DeadLetters, PartitionsFromState: 1,
		Placement: aggregate.Stats{Events: c.Events, ClockSkew: c.ClockSkew}}
	first, end := window.First.UnixMilli(), window.Last.AddDate(0, 0, 1).UnixMilli()
	for d, n := range p.Days {
		switch {
		case d < first:
			st.Placement.TooOld += n
		case d >= end:
			st.Placement.AfterWindow += n
		}
	}
	st.Placement.Counted = st.Placement.Events - st.Placement.TooOld - st.Placement.AfterWindow
	return st
}
