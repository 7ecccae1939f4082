package pipelines

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/winstate"
)

// planState on one night: what each partition becomes, and which days are
// recomputed, as DESIGN §3's incremental identity allows.
func TestPlanState(t *testing.T) {
	d := func(day int) time.Time { return time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC) }
	ms := func(day int) int64 { return d(day).UnixMilli() }
	part := func(k event.Kind, day int) raw.Partition { return raw.Partition{Kind: k, Day: d(day), Hour: -1} }
	c := stateCheck{AsOf: d(24), First: d(20), NowMs: d(25).UnixMilli(), MaxFutureMs: 3_600_000}
	s := winstate.State{AsOf: d(23), Parts: []winstate.Part{
		// Left the window: its days before the window change nothing in it.
		{Partition: part(event.Crash, 18), Hash: "x", Days: map[int64]int64{ms(17): 5, ms(18): 1}},
		// Left the window, with an event day inside it (impossible by the
		// identity, since an event day is never after its arrival day, but
		// a state is not trusted to obey it): that day is recomputed.
		{Partition: part(event.AppLoad, 19), Hash: "y", Days: map[int64]int64{ms(20): 1}},
		// Unchanged, touching the recomputed day 20: read for it alone.
		{Partition: part(event.AppLoad, 21), Hash: "a", Days: map[int64]int64{ms(20): 2, ms(21): 9}},
		// Unchanged, and nothing recomputed touches it: kept.
		{Partition: part(event.AppLoad, 22), Hash: "b", Days: map[int64]int64{ms(22): 9}},
		// Changed since: read whole, and its old days recomputed.
		{Partition: part(event.AppLoad, 23), Hash: "c", Days: map[int64]int64{ms(23): 9, ms(22): 1}},
		// Gone from the listing: its days recomputed.
		{Partition: part(event.Crash, 21), Hash: "g", Days: map[int64]int64{ms(21): 4}},
	}}
	listing := map[raw.Partition]string{
		part(event.AppLoad, 21): "a",
		part(event.AppLoad, 22): "b",
		part(event.AppLoad, 23): "c2",
		part(event.AppLoad, 24): "new",
	}
	p, actions, err := planState(c, s, listing)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{ms(20), ms(21), ms(22), ms(23)}; !slices.Equal(p.Recompute, want) {
		t.Errorf("recomputed days %v, want %v", p.Recompute, want)
	}
	want := map[raw.Partition]partAction{
		part(event.AppLoad, 21): readDays, // touches 20 and 21
		part(event.AppLoad, 22): readDays, // touches 22, recomputed for 23's old day
		part(event.AppLoad, 23): readWhole,
		part(event.AppLoad, 24): readWhole,
	}
	if !maps.Equal(actions, want) {
		t.Errorf("actions %v, want %v", actions, want)
	}
	var kept []raw.Partition
	for _, k := range p.Kept {
		kept = append(kept, k.Partition)
	}
	if want := []raw.Partition{part(event.AppLoad, 21), part(event.AppLoad, 22)}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v (unchanged, in the window)", kept, want)
	}

	// A listing without versions cannot tell an unchanged partition.
	if _, _, err := planState(c, s, map[raw.Partition]string{part(event.AppLoad, 24): ""}); err == nil {
		t.Error("a listing without versions: no error")
	}
	// A partition whose clock bound no longer holds is recomputed.
	s.Parts[3].Times.Latest = c.NowMs + 2*3_600_000
	p, actions, _ = planState(c, s, listing)
	if !slices.Contains(p.Recompute, ms(22)) || actions[part(event.AppLoad, 22)] != readWhole {
		t.Errorf("a partition beyond the clock bound: recompute %v, action %v; want its days recomputed and it read whole", p.Recompute, actions[part(event.AppLoad, 22)])
	}
}
