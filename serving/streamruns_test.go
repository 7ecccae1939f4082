package serving

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Offsets over two partitions, p0 and p1.
func offs(p0, p1 int64) map[string]int64 { return map[string]int64{"t/0": p0, "t/1": p1} }

// The operator's starts against the runs an operator leaves behind: a
// drained stop, a kill, a replay, a time in the middle of a run, a topic's
// retention. Each plan counts every event once: a run it leaves alone
// read nothing at or after the new start, and a run it takes over read
// nothing before it.
func TestPlanStreamStart(t *testing.T) {
	earliest, head := offs(0, 0), offs(100, 80)
	drained := StreamRun{ID: "drained", Start: offs(10, 5), End: offs(40, 30)}
	killed := StreamRun{ID: "killed", Start: offs(40, 30)} // no end: it read at most up to the head
	for _, c := range []struct {
		name       string
		requested  map[string]int64
		earliest   map[string]int64
		runs       []StreamRun
		atHead     bool
		start      map[string]int64
		superseded string
		expired    string
	}{
		{"latest after a drained stop and a kill: both stay", head, earliest, []StreamRun{drained, killed}, true, head, "[]", "map[]"},
		{"committed after a drained stop: it stays", offs(40, 30), earliest, []StreamRun{drained}, false, offs(40, 30), "[]", "map[]"},
		{"committed after a kill: the killed run is read again", offs(40, 30), earliest, []StreamRun{drained, killed}, false, offs(40, 30), "[killed]", "map[]"},
		{"a commit in the middle of a killed run: the start moves back to it", offs(60, 31), earliest, []StreamRun{drained, killed}, false, offs(40, 30), "[killed]", "map[]"},
		// Killed after reading, and committing, everything: what it stored
		// is unknown, so a committed restart reads it all again.
		{"committed at the head after a kill: the killed run is read again", head, earliest, []StreamRun{drained, killed}, false, offs(40, 30), "[killed]", "map[]"},
		{"earliest: everything is read again", earliest, earliest, []StreamRun{drained, killed}, false, earliest, "[drained killed]", "map[]"},
		{"a time inside the drained run: back to its start, and on", offs(20, 30), earliest, []StreamRun{drained, killed}, false, offs(10, 5), "[drained killed]", "map[]"},
		{"a superseded run is not read again", offs(40, 30), earliest,
			[]StreamRun{{ID: "gone", Start: offs(0, 0), SupersededBy: "drained"}, drained, killed}, false, offs(40, 30), "[killed]", "map[]"},
		{"retention took the start of a run", offs(20, 20), offs(15, 0), []StreamRun{drained}, false, offs(15, 5), "[drained]", "map[t/0:5]"},
		{"a partition the run never saw: read from 0", offs(40, 30), earliest,
			[]StreamRun{{ID: "one", Start: map[string]int64{"t/0": 40}}}, false, offs(40, 0), "[one]", "map[]"},
		{"a run that drained before a partition appeared: left alone on it", offs(40, 0), earliest,
			[]StreamRun{{ID: "before", Start: map[string]int64{"t/0": 10}, End: map[string]int64{"t/0": 40}}}, false, offs(40, 0), "[]", "map[]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := PlanStreamStart(c.requested, c.earliest, head, c.runs, c.atHead)
			if fmt.Sprint(p.Start) != fmt.Sprint(c.start) || fmt.Sprint(p.Superseded) != c.superseded || fmt.Sprint(p.Expired) != c.expired {
				t.Errorf("start %v superseded %v expired %v; want %v %s %s", p.Start, p.Superseded, p.Expired, c.start, c.superseded, c.expired)
			}
			// Independently of the planner: every run left live read
			// nothing at or after the start, and every run taken over
			// read nothing before it (what Kafka still holds).
			taken := map[string]bool{}
			for _, id := range p.Superseded {
				taken[id] = true
			}
			for _, r := range c.runs {
				if r.SupersededBy != "" {
					continue
				}
				for part, s := range p.Start {
					from, end := r.Start[part], head[part]
					if r.End != nil {
						end = r.End[part]
					}
					if from >= end {
						continue
					}
					if taken[r.ID] && s > max(from, c.earliest[part]) {
						t.Errorf("%s is taken over but starts at %d on %s, after the run's %d", r.ID, s, part, from)
					}
					if !taken[r.ID] && (s < end || r.End == nil && !c.atHead) {
						t.Errorf("%s stays but the new run starts at %d on %s, before its end %d, or it has no end and the start is not the head", r.ID, s, part, end)
					}
				}
			}
		})
	}
}

func TestExpiredStreamRuns(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	run := func(id string, ago time.Duration) StreamRun { return StreamRun{ID: id, Started: now.Add(-ago)} }
	ttl := 7 * day
	runs := []StreamRun{
		run("c", 2*day), // the newest but one: its successor started an hour ago
		run("a", 30*day),
		run("b", 10*day), // its successor c started 2 days ago: rows left
		run("d", time.Hour),
		run("old", 40*day),
	}
	// a's successor b started 10 days ago (> 7 d + 1 h); old's successor a
	// 30 days ago. b, c and the newest, d, keep rows.
	if got, want := ExpiredStreamRuns(runs, now, ttl), []string{"old", "a"}; !slices.Equal(got, want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	// At the edge: a successor that started ttl and an hour ago exactly is
	// not yet past it.
	edge := []StreamRun{run("x", 20*day), run("y", ttl+time.Hour)}
	if got := ExpiredStreamRuns(edge, now, ttl); len(got) != 0 {
		t.Errorf("expired %v at the edge, want none", got)
	}
	if got := ExpiredStreamRuns(edge, now.Add(time.Second), ttl); !slices.Equal(got, []string{"x"}) {
		t.Errorf("expired %v just past the edge, want [x]", got)
	}
	if got := ExpiredStreamRuns(runs[:1], now.Add(365*day), ttl); len(got) != 0 {
		t.Errorf("a lone run expired: %v", got)
	}
	if got := ExpiredStreamRuns(runs, now, 0); len(got) != 0 {
		t.Errorf("rows that never expire: expired %v", got)
	}
}
