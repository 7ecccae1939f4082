package kafkaio

import (
	"math"
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
	// MissingSinceMs is when fetches began to find the topic or partition
	// unknown; 0 while it is there.
	MissingSinceMs int64
}

// watermarkEstimator estimates a partition's watermark as DESIGN §3 says:
// the newest event time seen minus the out-of-orderness bound. When the
// partition is caught up (nothing left to read) it is idle, and its
// watermark advances with the wall clock minus the bound, so an idle
// partition never holds the pipeline's watermark back.
//
// What it reports to the runner is the minimum over the partitions of the
// same Read that this process has read lately (watermarkRegistry), each at
// the watermark it had when its last bundle ended, published only once
// that bundle's output is persisted (when the runner resumes the
// partition, it creates the estimator from the checkpointed state: that
// is the moment). The report is never above this partition's own
// watermark, so runners that hold an SDF's output watermark at the
// minimum over its restrictions (Flink, Dataflow) lose nothing by it,
// however the partitions are spread over workers. Prism (2.77) instead
// takes each bundle's reported watermark in turn as the stage's, which
// would make the pipeline's watermark the newest partition's rather than
// the oldest's; it runs every bundle of an environment in one worker
// process, where the registry sees every partition. And a partition's
// watermark published while its bundle's output was still in flight let
// a concurrent bundle of another partition close windows that output then
// arrived late to (a dense catch-up lost part of a minute that way).
type watermarkEstimator struct {
	state WatermarkState
	bound int64
	reg   *watermarkRegistry
	// maxFuture (ms), if > 0, caps the watermark at the processing clock
	// plus it: the reader dead-letters events further ahead, and the cap
	// holds whatever the clocks of the workers say.
	maxFuture int64
	now       func() time.Time // the clock; time.Now unless a test sets one
}

// newWatermarkEstimator resumes a partition from its checkpointed state,
// which the runner has persisted with the output before it: so it is
// published to reg.
func newWatermarkEstimator(s WatermarkState, bound time.Duration, reg *watermarkRegistry) *watermarkEstimator {
	reg.publish(s)
	return &watermarkEstimator{state: s, bound: bound.Milliseconds(), reg: reg}
}

// initialWatermarkState starts at Beam's minimum timestamp: nothing is
// known about a partition until it is read.
func initialWatermarkState(readID string, tp TopicPartition) WatermarkState {
	min := mtime.MinTimestamp.Milliseconds()
	return WatermarkState{ReadID: readID, Topic: tp.Topic, Partition: tp.Partition, MaxEventMs: min, WatermarkMs: min,
		EndOffset: -1, Committed: -1}
}

// CurrentWatermark implements sdf.WatermarkEstimator: the minimum of the
// published watermarks of the Read's partitions, and never more than this
// partition's own.
func (w *watermarkEstimator) CurrentWatermark() time.Time {
	return time.UnixMilli(min(w.state.WatermarkMs, w.reg.min(w.state.ReadID, w.state.WatermarkMs)))
}

// own is this partition's watermark alone.
func (w *watermarkEstimator) own() time.Time { return time.UnixMilli(w.state.WatermarkMs) }

// observe accounts for an event time (ms).
func (w *watermarkEstimator) observe(ms int64) {
	ms = min(ms, w.limit())
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

// limit is the furthest event time (ms) the partition may account for:
// the clock plus maxFuture, or no limit.
func (w *watermarkEstimator) limit() int64 {
	if w.maxFuture <= 0 {
		return math.MaxInt64
	}
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	return now().UnixMilli() + w.maxFuture
}

func (w *watermarkEstimator) advance(ms int64) {
	ms = min(ms, w.limit())
	if ms > w.state.WatermarkMs {
		w.state.WatermarkMs = ms
	}
}

// registryTTL is how long a partition's published watermark counts in this
// process after it was last published. A partition being read is
// published at every bundle (a few times a second, idle or not), so on
// prism, where one process runs every bundle, no partition goes stale. On
// a runner that spreads partitions over workers, a partition read
// elsewhere (or moved away) stops holding this worker's reports back
// after registryTTL; the runner's own minimum over restrictions covers it.
const registryTTL = time.Minute

// partitionWatermarks is the process's view of each Read's partitions.
var partitionWatermarks = newWatermarkRegistry(time.Now)

// watermarkRegistry holds, per Read, the published watermark of each
// partition this process knows, with when it was last published.
type watermarkRegistry struct {
	mu    sync.Mutex
	now   func() time.Time
	reads map[string]map[TopicPartition]published
}

type published struct {
	ms   int64     // the partition's watermark
	seen time.Time // when it was last published
}

func newWatermarkRegistry(now func() time.Time) *watermarkRegistry {
	return &watermarkRegistry{now: now, reads: map[string]map[TopicPartition]published{}}
}

// publish raises a partition's published watermark to s's (never lowers
// it) and marks it fresh.
func (r *watermarkRegistry) publish(s WatermarkState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishLocked(s.ReadID, TopicPartition{Topic: s.Topic, Partition: s.Partition}, s.WatermarkMs)
}

func (r *watermarkRegistry) publishLocked(readID string, tp TopicPartition, ms int64) {
	m := r.reads[readID]
	if m == nil {
		m = map[TopicPartition]published{}
		r.reads[readID] = m
	}
	tp.New = false
	cur, ok := m[tp]
	if ok && cur.ms > ms {
		ms = cur.ms
	}
	m[tp] = published{ms: ms, seen: r.now()}
}

// known makes partitions known at the minimum timestamp, before any of the
// Read's partitions reports: a partition whose restriction does not exist
// yet must still hold the watermark back (for registryTTL at most, unless
// it is read here).
func (r *watermarkRegistry) known(readID string, tps []TopicPartition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, tp := range tps {
		tp.New = false
		if _, ok := r.reads[readID][tp]; !ok {
			r.publishLocked(readID, tp, mtime.MinTimestamp.Milliseconds())
		}
	}
}

// min is the smallest fresh published watermark of a Read's partitions,
// or fallback if none is fresh. It forgets partitions stale for ten TTLs,
// and Reads with none left.
func (r *watermarkRegistry) min(readID string, fallback int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	lo, fresh := int64(math.MaxInt64), false
	for tp, p := range r.reads[readID] {
		age := now.Sub(p.seen)
		if age > 10*registryTTL {
			delete(r.reads[readID], tp)
			continue
		}
		if age <= registryTTL {
			lo, fresh = min(lo, p.ms), true
		}
	}
	if len(r.reads[readID]) == 0 {
		delete(r.reads, readID)
	}
	if !fresh {
		return fallback
	}
	return lo
}
