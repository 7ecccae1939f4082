package kafkaio

import (
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
)

// WatermarkState is a partition's watermark estimator state, carried across
// checkpoints with the partition's restriction (so it moves with the
// restriction to whichever worker resumes it).
type WatermarkState struct {
	ReadID      string // the Read this partition belongs to
	Topic       string
	Partition   int32
	MaxEventMs  int64 // newest event time seen
	WatermarkMs int64 // the partition's watermark, never decreasing
	// EndOffset is the partition's high watermark (the offset the next
	// produced record gets) as the broker last reported it; -1 while
	// unknown. The partition is caught up, and may idle, only when
	// everything before a known EndOffset has been read.
	EndOffset int64
	// Committed is the offset last committed to the consumer group by
	// this Read; -1 for none.
	Committed int64
}

// watermarkEstimator estimates a partition's watermark as DESIGN §3 says:
// the newest event time seen minus the out-of-orderness bound. When the
// partition is caught up (nothing left to read) it is idle, and its
// watermark advances with the wall clock minus the bound, so an idle
// partition never holds the pipeline's watermark back.
//
// What it reports to the runner is the minimum over every partition of the
// same Read known in this process. Runners that hold an SDF's output
// watermark at the minimum over its restrictions lose nothing by it (the
// value is never above this partition's own). Prism instead takes each
// bundle's reported watermark in turn as the stage's, which would make the
// pipeline's watermark the newest partition's rather than the oldest's.
type watermarkEstimator struct {
	state WatermarkState
	bound int64
}

func newWatermarkEstimator(s WatermarkState, bound time.Duration) *watermarkEstimator {
	return &watermarkEstimator{state: s, bound: bound.Milliseconds()}
}

// initialWatermarkState starts at Beam's minimum timestamp: nothing is
// known about a partition until it is read.
func initialWatermarkState(readID string, tp TopicPartition) WatermarkState {
	min := mtime.MinTimestamp.Milliseconds()
	return WatermarkState{ReadID: readID, Topic: tp.Topic, Partition: tp.Partition, MaxEventMs: min, WatermarkMs: min,
		EndOffset: -1, Committed: -1}
}

// CurrentWatermark implements sdf.WatermarkEstimator.
func (w *watermarkEstimator) CurrentWatermark() time.Time {
	return time.UnixMilli(partitionWatermarks.report(w.state))
}

// own is this partition's watermark alone.
func (w *watermarkEstimator) own() time.Time { return time.UnixMilli(w.state.WatermarkMs) }

// observe accounts for an event time (ms).
func (w *watermarkEstimator) observe(ms int64) {
	if ms > w.state.MaxEventMs {
		w.state.MaxEventMs = ms
		w.advance(ms - w.bound)
	}
}

// idle is called when the partition is caught up to a known end offset:
// whatever arrives next is new, so the watermark may follow the clock.
func (w *watermarkEstimator) idle(now time.Time) { w.advance(now.UnixMilli() - w.bound) }

// caughtUp reports whether everything before the partition's known end
// offset has been read, next being the next offset to read. An unknown end
// offset is never caught up: a poll that returns nothing may only mean the
// first fetch has not come back yet, and idling then would move the
// watermark of a partition full of history to the wall clock, making every
// event behind it late.
func (w *watermarkEstimator) caughtUp(next int64) bool {
	return w.state.EndOffset >= 0 && next >= w.state.EndOffset
}

func (w *watermarkEstimator) advance(ms int64) {
	if ms > w.state.WatermarkMs {
		w.state.WatermarkMs = ms
	}
}

// partitionWatermarks is the process's view of each Read's partitions.
var partitionWatermarks = &watermarkRegistry{reads: map[string]map[TopicPartition]int64{}}

type watermarkRegistry struct {
	mu    sync.Mutex
	reads map[string]map[TopicPartition]int64
}

// register makes a partition known (at its initial watermark) as soon as
// its restriction exists, before it is first read.
func (r *watermarkRegistry) register(s WatermarkState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.reads[s.ReadID]
	if m == nil {
		m = map[TopicPartition]int64{}
		r.reads[s.ReadID] = m
	}
	tp := TopicPartition{Topic: s.Topic, Partition: s.Partition}
	if cur, ok := m[tp]; !ok || s.WatermarkMs > cur {
		m[tp] = s.WatermarkMs
	}
}

// report records a partition's watermark and returns the Read's minimum.
func (r *watermarkRegistry) report(s WatermarkState) int64 {
	r.register(s)
	r.mu.Lock()
	defer r.mu.Unlock()
	min := s.WatermarkMs
	for _, ms := range r.reads[s.ReadID] {
		if ms < min {
			min = ms
		}
	}
	return min
}
