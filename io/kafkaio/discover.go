package kafkaio

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/twmb/franz-go/pkg/kadm"
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
//
// A topic that does not exist yet is looked for at every interval, with a
// warning and the gauge lumen.kafka topic_missing_<topic> at 1 while it is
// missing: on a fresh install a kind nobody has produced yet has no topic,
// and the other kinds must flow meanwhile. Only when none of Topics has
// existed for MissingTimeoutMs does an unbounded read fail, with one line
// naming Prefix: a wrong --topic_prefix, or the wrong brokers.
type discoverFn struct {
	kafkaFn
	Bounded          bool
	IntervalMs       int64
	MissingTimeoutMs int64
	// Topics are every topic of the Read, and Prefix their prefix, for the
	// check that at least one exists.
	Topics []string
	Prefix string
	// Seq is the Read's number, for Drain.
	Seq int64

	missingSince map[string]time.Time // per topic, in this worker
	now          func() time.Time     // the clock; time.Now unless a test sets one
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
	if draining(f.Seq) {
		if t, ok := rt.Rt.(*tracker); ok {
			t.finish()
		}
		return sdf.StopProcessing(), nil
	}
	n, err := partitions(ctx, f.admin, topic)
	if err != nil {
		if permanent(err) {
			return sdf.StopProcessing(), fmt.Errorf("kafkaio: discovering partitions of %s: %w (not retriable)", topic, err)
		}
		return sdf.ResumeProcessingIn(time.Duration(f.IntervalMs) * time.Millisecond), nil // transient: look again
	}
	if err := f.checkMissing(ctx, topic, n); err != nil {
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

// checkMissing keeps track of a missing topic, and fails an unbounded
// read once the topic has been missing for MissingTimeoutMs and no other
// topic of the Read exists either.
func (f *discoverFn) checkMissing(ctx context.Context, topic string, partitions int) error {
	if f.Bounded {
		return nil
	}
	gauge := beam.NewGauge("lumen.kafka", "topic_missing_"+topic)
	if partitions > 0 {
		if _, was := f.missingSince[topic]; was {
			slog.Info("kafkaio: topic appeared; reading it from its start", "topic", topic)
			delete(f.missingSince, topic)
			gauge.Set(ctx, 0)
		}
		return nil
	}
	gauge.Set(ctx, 1)
	if f.missingSince == nil {
		f.missingSince = map[string]time.Time{}
	}
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	since, ok := f.missingSince[topic]
	if !ok {
		f.missingSince[topic] = now()
		slog.Warn("kafkaio: topic does not exist yet; reading the others and looking for it again every interval",
			"topic", topic, "interval", time.Duration(f.IntervalMs)*time.Millisecond)
		since = f.missingSince[topic]
	}
	waited := now().Sub(since)
	if f.MissingTimeoutMs <= 0 || waited < time.Duration(f.MissingTimeoutMs)*time.Millisecond {
		return nil
	}
	some, err := anyTopicExists(ctx, f.admin, f.Topics)
	if err != nil || some {
		return nil // others flow: keep looking; a failed look is retried
	}
	return fmt.Errorf("kafkaio: no topic with prefix %q exists (%s; waited %v); check --topic_prefix and the brokers",
		f.Prefix, strings.Join(f.Topics, ", "), waited.Round(time.Second))
}

// anyTopicExists reports whether at least one of topics has partitions.
func anyTopicExists(ctx context.Context, admin *kadm.Client, topics []string) (bool, error) {
	for _, t := range topics {
		n, err := partitions(ctx, admin, t)
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}
