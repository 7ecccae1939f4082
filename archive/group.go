package archive

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The consumer group's side of the archiver: committing rolled segments,
// and what happens to segments when partitions come and go.

// commit commits the offsets of rolled segments (of the partitions in
// only, or all if nil). A failed commit is not fatal: the files are
// durable, the offset stays queued, and the next commit covers it; if the
// archiver dies first, the next owner rewrites the segment (cleanLeftovers).
func (a *Archiver) commit(ctx context.Context, cl *kgo.Client, only map[tp]bool) {
	var rs []*kgo.Record
	for k, r := range a.pending {
		if only == nil || only[k] {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.CommitRecords(ctx, rs...); err != nil {
		a.stats.CommitErrors++
		a.cfg.Logger.Warn("archive: commit failed; retrying after the next poll", "partitions", len(rs), "err", err)
		return
	}
	a.stats.Commits++
	for _, r := range rs {
		if a.pending[tp{r.Topic, r.Partition}] == r {
			delete(a.pending, tp{r.Topic, r.Partition})
		}
	}
}

// assigned starts a fresh state for each new partition: a new assignment
// may start below what this process wrote before (a commit that failed),
// so its leftovers are judged anew.
func (a *Archiver) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for topic, parts := range assigned {
		kind, ok := a.kinds[topic]
		if !ok {
			continue
		}
		for _, part := range parts {
			a.parts[tp{topic, part}] = newPartition(topic, part, kind)
		}
	}
	if len(assigned) > 0 {
		a.cfg.Logger.Info("archive: partitions assigned", "partitions", assigned)
	}
}

// revoked rolls and commits each revoked partition's segment before the
// partition goes to another member. If the roll fails, the partition is
// given up uncommitted and Run stops with the error.
func (a *Archiver) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	only := map[tp]bool{}
	for topic, parts := range revoked {
		for _, part := range parts {
			k := tp{topic, part}
			only[k] = true
			p := a.parts[k]
			if p == nil {
				continue
			}
			if a.err != nil {
				drop(p)
			} else if err := a.roll(a.ioCtx, p); err != nil {
				a.failLocked(err)
			}
		}
	}
	a.commit(a.ioCtx, cl, only)
	for k := range only {
		delete(a.parts, k)
		delete(a.pending, k)
	}
	if len(revoked) > 0 {
		a.cfg.Logger.Info("archive: partitions revoked", "partitions", revoked)
	}
}

// lost drops the segments of partitions taken away without a revoke (the
// session expired): another member may own them already, so nothing of
// theirs is committed here.
func (a *Archiver) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for topic, parts := range lost {
		for _, part := range parts {
			k := tp{topic, part}
			if p := a.parts[k]; p != nil {
				drop(p)
			}
			delete(a.parts, k)
			delete(a.pending, k)
		}
	}
	if len(lost) > 0 {
		a.cfg.Logger.Warn("archive: partitions lost; their open segments were dropped", "partitions", lost)
	}
}
