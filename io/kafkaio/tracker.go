package kafkaio

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
)

// unbounded is the End of a restriction with no end.
const unbounded = math.MaxInt64

// tracker claims the offsets of one partition in order. A checkpoint
// (fraction 0, when ProcessElement asks to resume) and any dynamic split of
// an unbounded range both split at the next offset: the running reader
// stops there and the residual carries on, so a partition is read by one
// reader at a time, in order. (Refusing a split is not an option: the Go
// harness then reports an empty residual, which prism rejects.) A bounded
// range splits at the requested fraction, for parallel replays.
type tracker struct {
	rest    offsetrange.Restriction
	claimed int64 // last claimed offset; Start-1 before any
	stopped bool
	err     error
	end     atomic.Int64 // the partition's end offset as last seen, for progress; 0 until known
}

func newTracker(rest offsetrange.Restriction) *tracker {
	return &tracker{rest: rest, claimed: rest.Start - 1}
}

func (t *tracker) TryClaim(pos any) bool {
	off, ok := pos.(int64)
	if !ok {
		t.err = fmt.Errorf("kafkaio: claimed %T, want int64", pos)
		return false
	}
	if t.stopped || t.err != nil {
		return false
	}
	if off <= t.claimed {
		t.err = fmt.Errorf("kafkaio: offset %d claimed after %d", off, t.claimed)
		return false
	}
	if off >= t.rest.End {
		t.stopped = true
		return false
	}
	t.claimed = off
	return true
}

func (t *tracker) GetError() error { return t.err }

// finish ends the restriction after what was claimed: nothing more is
// claimed, and it is done (a drained read; see Drain).
func (t *tracker) finish() {
	t.rest.End = t.claimed + 1
	t.stopped = true
}

func (t *tracker) TrySplit(fraction float64) (primary, residual any, err error) {
	if t.stopped || t.IsDone() {
		return t.rest, nil, nil
	}
	next := t.claimed + 1
	if fraction <= 0 || t.rest.End == unbounded {
		// Keep what was claimed, resume from the next offset.
		residual = offsetrange.Restriction{Start: next, End: t.rest.End}
		t.rest.End = next
		t.stopped = true
		return t.rest, residual, nil
	}
	split := next + int64(math.Ceil(float64(t.rest.End-next)*fraction))
	if split >= t.rest.End {
		return t.rest, nil, nil
	}
	residual = offsetrange.Restriction{Start: split, End: t.rest.End}
	t.rest.End = split
	return t.rest, residual, nil
}

func (t *tracker) GetProgress() (done, remaining float64) {
	done = float64(t.claimed + 1 - t.rest.Start)
	end := t.rest.End
	if end == unbounded {
		end = max(t.end.Load(), t.claimed+1)
	}
	return done, math.Max(0, float64(end-(t.claimed+1)))
}

func (t *tracker) IsDone() bool {
	return t.err == nil && (t.stopped || t.claimed >= t.rest.End-1)
}

func (t *tracker) GetRestriction() any { return t.rest }

func (t *tracker) IsBounded() bool { return t.rest.End != unbounded }
