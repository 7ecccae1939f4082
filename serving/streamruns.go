package serving

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// StreamRun is one run of the stream, as the speed tables know it. Each
// run's rows are its own (WithRun), and reads add up the runs that are not
// superseded. A run supersedes an earlier one when it reads again
// everything that run read: then the earlier run's rows are left out, and
// a replay never adds to what an earlier run counted (DESIGN §3,
// streaming).
type StreamRun struct {
	ID      string
	Started time.Time
	// Start is, per partition (keyed "topic/partition", as the Kafka
	// reader names them), the first offset the run reads. A partition that is not in it appeared after
	// the run started, and the run read it from its beginning.
	Start map[string]int64
	// End is, after a drained stop, where each partition's reader stopped:
	// the run counted exactly [Start, End). Nil when it is not known (the
	// run was killed, cancelled, or is still running).
	End map[string]int64
	// SupersededBy names the later run that reads again everything this
	// one read; reads leave this run's rows out. Empty: live.
	SupersededBy string
}

// StreamStart is where a new run starts, and what it takes over.
type StreamStart struct {
	// Start is the offset each partition's reader starts at.
	Start map[string]int64
	// Superseded are the earlier runs the new run reads again in full;
	// mark them SupersededBy the new run before it writes.
	Superseded []string
	// Extended are the partitions whose start moved before the requested
	// one, so that the run covers an earlier run it overlaps.
	Extended []string
	// Expired counts, per partition, the offsets an earlier run read that
	// Kafka no longer holds: the superseded run counted them and the new
	// run cannot. They are older than the topic's retention, which the
	// batch layer has counted long since.
	Expired map[string]int64
}

// PlanStreamStart decides where a new run of the stream starts so that the
// speed tables count every event once, whatever the requested start and
// however earlier runs stopped. requested is the start the operator asked
// for (--start, resolved to offsets), earliest and head the partitions'
// first and next offsets now, and runs the earlier runs. atHead says the
// operator asked for the head (--start=latest).
//
// An earlier live run that drained is left alone if the new run starts at
// or after its End on every partition. A run with no recorded end (killed,
// or cancelled in the runner) stored an unknown part of what it read: the
// panes in flight were lost, and offsets it committed may be past them. So
// it is left alone only when the new run starts at the head (atHead),
// which by definition leaves what came before it to the batch; any other
// start takes it over. A run that is not left alone is taken over: the new
// run's start moves back, where needed, to that run's start, so it reads
// again everything that run read, and the run is superseded. Moving back
// can make the new run overlap a run it started after, so this repeats
// until nothing moves. A requested start is therefore honoured or moved
// earlier, never later: the counts are exact, at the cost of a longer
// replay.
func PlanStreamStart(requested, earliest, head map[string]int64, runs []StreamRun, atHead bool) StreamStart {
	start := make(map[string]int64, len(requested))
	for p, o := range requested {
		start[p] = max(o, earliest[p])
	}
	plan := StreamStart{Expired: map[string]int64{}}
	done := map[string]bool{}
	extended := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for _, r := range runs {
			if r.SupersededBy != "" || done[r.ID] || disjoint(start, r, head, atHead) {
				continue
			}
			done[r.ID] = true
			changed = true
			plan.Superseded = append(plan.Superseded, r.ID)
			for p := range start {
				from, ok := r.Start[p]
				if !ok {
					from = 0 // the partition appeared later: r read it from its beginning
				}
				if from < earliest[p] {
					plan.Expired[p] += earliest[p] - from
					from = earliest[p]
				}
				if from < start[p] {
					start[p] = from
					extended[p] = true
				}
			}
		}
	}
	plan.Start = start
	for p := range extended {
		plan.Extended = append(plan.Extended, p)
	}
	sort.Strings(plan.Extended)
	sort.Strings(plan.Superseded)
	for p, n := range plan.Expired {
		if n == 0 {
			delete(plan.Expired, p)
		}
	}
	return plan
}

// disjoint reports whether a run starting at start reads nothing r read,
// and r's rows can stay. A run with no recorded end can stay only atHead.
func disjoint(start map[string]int64, r StreamRun, head map[string]int64, atHead bool) bool {
	if r.End == nil && !atHead {
		return false
	}
	for p, s := range start {
		end := head[p] // not drained: it read at most up to the head of now
		if r.End != nil {
			var ok bool
			if end, ok = r.End[p]; !ok {
				continue // drained before the partition appeared: it read none of it
			}
		}
		if r.Start[p] >= end { // (a partition not in Start: read from 0)
			continue // r read nothing of p
		}
		if s < end {
			return false
		}
	}
	return true
}

// ExpiredStreamRuns returns the runs whose speed rows have all expired by
// now, with rows living ttl: a run is done writing once the next run
// starts (runs on one store follow one another), so a run whose successor
// started more than ttl (and an hour, for clocks) before now has no row
// left, and forgetting it changes no read. The newest run is never
// expired: the next plan starts from it.
func ExpiredStreamRuns(runs []StreamRun, now time.Time, ttl time.Duration) []string {
	if ttl <= 0 { // rows that never expire
		return nil
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b StreamRun) int { return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID)) })
	var out []string
	for i := 0; i+1 < len(sorted); i++ {
		if next := sorted[i+1]; next.Started.After(sorted[i].Started) && next.Started.Add(ttl+time.Hour).Before(now) {
			out = append(out, sorted[i].ID)
		}
	}
	return out
}
