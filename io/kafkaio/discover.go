package kafkaio

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register.DoFn5x2[context.Context, *sdf.WallTimeWatermarkEstimator, *sdf.LockRTracker, string, func(beam.EventTime, TopicPartition), sdf.ProcessContinuation, error](&discoverFn{})
	register.Emitter2[beam.EventTime, TopicPartition]()
}

// discoverFn emits a topic's partitions as they appear. It is itself a
// splittable DoFn whose restriction counts partitions: a topic's
// partitions are numbered from 0 and only ever grow, so "partitions
// [start, ∞) not yet emitted" is an offset range, checkpointed like any
// other. Position -1 is the first look itself: partitions found after it
// (including those of a topic created later) are marked New, so they are
// read from their beginning whatever the start position.
type discoverFn struct {
	kafkaFn
	Bounded          bool
	IntervalMs       int64
	MissingTimeoutMs int64 // an unbounded read fails once a topic has been missing this long

	missingSince map[string]time.Time // per topic, in this worker
}

// Setup builds a client whose metadata is never older than a poll: the
// client otherwise answers metadata requests from a cache for seconds.
func (f *discoverFn) Setup() error { return f.setup(kgo.MetadataMinAge(50 * time.Millisecond)) }

func (f *discoverFn) CreateInitialRestriction(ctx context.Context, topic string) (offsetrange.Restriction, error) {
	if err := f.Setup(); err != nil { // the runner may not have called Setup on this instance
		return offsetrange.Restriction{}, err
	}
	if !f.Bounded {
		return offsetrange.Restriction{Start: -1, End: unbounded}, nil
	}
	n, err := partitions(ctx, f.admin, topic)
	return offsetrange.Restriction{Start: -1, End: int64(n)}, err
}

func (f *discoverFn) SplitRestriction(_ string, r offsetrange.Restriction) []offsetrange.Restriction {
	return []offsetrange.Restriction{r}
}

func (f *discoverFn) RestrictionSize(_ string, r offsetrange.Restriction) float64 { return 1 }

func (f *discoverFn) CreateTracker(r offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(newTracker(r))
}

func (f *discoverFn) TruncateRestriction(rt *sdf.LockRTracker, _ string) offsetrange.Restriction {
	start := rt.GetRestriction().(offsetrange.Restriction).Start
	return offsetrange.Restriction{Start: start, End: start}
}

// Partition descriptors are control data, stamped with the minimum
// timestamp: the readers' own estimators decide the data's watermark, and
// prism holds an SDF stage's watermark at its pending input's timestamps.
// Discovery's own watermark follows the wall clock, as other runners need.
func (f *discoverFn) CreateWatermarkEstimator() *sdf.WallTimeWatermarkEstimator {
	return &sdf.WallTimeWatermarkEstimator{}
}

func (f *discoverFn) ProcessElement(ctx context.Context, _ *sdf.WallTimeWatermarkEstimator, rt *sdf.LockRTracker, topic string,
	emit func(beam.EventTime, TopicPartition)) (sdf.ProcessContinuation, error) {
	n, err := partitions(ctx, f.admin, topic)
	if err != nil {
		if permanent(err) {
			return sdf.StopProcessing(), fmt.Errorf("kafkaio: discovering partitions of %s: %w (not retriable)", topic, err)
		}
		return sdf.ResumeProcessingIn(time.Duration(f.IntervalMs) * time.Millisecond), nil // transient: look again
	}
	if err := f.checkMissing(topic, n); err != nil {
		return sdf.StopProcessing(), err
	}
	start := rt.GetRestriction().(offsetrange.Restriction).Start
	firstLook := start == -1
	if firstLook {
		if !rt.TryClaim(int64(-1)) {
			return sdf.StopProcessing(), nil
		}
		start = 0
	}
	for p := start; p < int64(n); p++ {
		if !rt.TryClaim(p) {
			return sdf.StopProcessing(), nil
		}
		emit(mtime.MinTimestamp, TopicPartition{Topic: topic, Partition: int32(p), New: !firstLook})
	}
	if f.Bounded {
		return sdf.StopProcessing(), nil
	}
	return sdf.ResumeProcessingIn(time.Duration(f.IntervalMs) * time.Millisecond), nil
}

// checkMissing fails an unbounded read whose topic has had no partitions
// for MissingTimeoutMs: a topic that is not there is a misconfiguration
// (a wrong prefix, a deleted topic), not something to wait for forever.
func (f *discoverFn) checkMissing(topic string, partitions int) error {
	if f.Bounded || f.MissingTimeoutMs <= 0 {
		return nil
	}
	if partitions > 0 {
		delete(f.missingSince, topic)
		return nil
	}
	if f.missingSince == nil {
		f.missingSince = map[string]time.Time{}
	}
	since, ok := f.missingSince[topic]
	if !ok {
		f.missingSince[topic] = time.Now()
		return nil
	}
	if waited := time.Since(since); waited >= time.Duration(f.MissingTimeoutMs)*time.Millisecond {
		return fmt.Errorf("kafkaio: topic %s does not exist (waited %v); check --topic_prefix and the brokers", topic, waited.Round(time.Second))
	}
	return nil
}
