package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

var readSeq atomic.Int64

// reader reads one partition's offset range: the splittable DoFn that
// Read and ReadPartials share, all but the output of ProcessElement.
type reader struct {
	kafkaFn
	Cfg    ReadConfig
	Prefix string
	ReadID string // distinguishes this Read's partitions in the watermark registry
	Seq    int64  // numbers the Reads of this process, for Drain; 0: never drained

	dec    *event.Decoder
	listed bool               // the topics' partitions are known to the watermark registry
	reg    *watermarkRegistry // nil: partitionWatermarks

	mu   sync.Mutex
	ends map[TopicPartition]int64 // each partition's end offset, as last seen here, for sizing
}

// noteEnd records a partition's end offset for RestrictionSize, and for
// the progress of the restriction being read.
func (f *reader) noteEnd(tp TopicPartition, rt *sdf.LockRTracker, end int64) {
	f.mu.Lock()
	if f.ends == nil {
		f.ends = map[TopicPartition]int64{}
	}
	tp.New = false
	f.ends[tp] = end
	f.mu.Unlock()
	if t, ok := rt.Rt.(*tracker); ok {
		t.end.Store(end)
	}
}

func (f *reader) Setup() error {
	if f.dec == nil {
		f.dec = event.NewDecoder()
	}
	return f.setup(kgo.FetchMaxWait(250*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(500*time.Millisecond))
}

// CreateInitialRestriction resolves the start position (and, bounded, the
// end) of a partition to offsets.
func (f *reader) CreateInitialRestriction(ctx context.Context, tp TopicPartition) (offsetrange.Restriction, error) {
	if err := f.Setup(); err != nil { // the runner may not have called Setup on this instance
		return offsetrange.Restriction{}, err
	}
	f.knowPartitions(ctx, tp)
	// A partition just created may not be in every broker's (or this
	// client's) metadata yet: retry for a while before failing the job.
	var start int64
	var err error
	for attempt := 0; ; attempt++ {
		if start, err = f.startOffset(ctx, tp); err == nil || attempt == 8 || permanent(err) {
			break
		}
		f.client.ForceMetadataRefresh()
		select {
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return offsetrange.Restriction{}, fmt.Errorf("kafkaio: start offset of %v: %w (after %v)", tp, ctx.Err(), err)
		}
	}
	if err != nil {
		return offsetrange.Restriction{}, err
	}
	end := int64(unbounded)
	if f.Cfg.Bounded {
		var lo kadm.ListedOffsets
		if f.Cfg.EndTimeMs > 0 {
			lo, err = f.admin.ListOffsetsAfterMilli(ctx, f.Cfg.EndTimeMs, tp.Topic)
		} else {
			lo, err = f.admin.ListEndOffsets(ctx, tp.Topic)
		}
		if err != nil {
			return offsetrange.Restriction{}, fmt.Errorf("kafkaio: end offset of %v: %w", tp, err)
		}
		if end, err = lookup(lo, tp); err != nil {
			return offsetrange.Restriction{}, err
		}
		end = max(end, start)
	}
	return offsetrange.Restriction{Start: start, End: end}, nil
}

// knowPartitions makes tp, and on the first call every partition of the
// Read's topics, known to the watermark registry, so none of them can be
// overtaken before its restriction exists (prism may read one topic's
// partitions before it has even discovered another's).
func (f *reader) knowPartitions(ctx context.Context, tp TopicPartition) {
	tps := []TopicPartition{tp}
	if !f.listed {
		if td, err := f.admin.ListTopics(ctx, f.Cfg.Topics...); err == nil {
			for _, t := range td {
				for p := range t.Partitions {
					tps = append(tps, TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
			f.listed = true
		}
	}
	f.registry().known(f.ReadID, tps)
}

func (f *reader) startOffset(ctx context.Context, tp TopicPartition) (int64, error) {
	var lo kadm.ListedOffsets
	var err error
	if o, ok := f.Cfg.StartOffsets[tp.String()]; ok && !tp.New {
		return o, nil
	}
	switch pos := f.Cfg.Start; {
	case pos == StartEarliest || tp.New || f.Cfg.StartOffsets != nil:
		lo, err = f.admin.ListStartOffsets(ctx, tp.Topic)
	case pos == StartLatest:
		lo, err = f.admin.ListEndOffsets(ctx, tp.Topic)
	case pos == StartAtTime:
		lo, err = f.admin.ListOffsetsAfterMilli(ctx, f.Cfg.StartTimeMs, tp.Topic)
	case pos == StartCommitted:
		or, err := f.admin.FetchOffsetsForTopics(ctx, f.Cfg.Group, tp.Topic)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return 0, fmt.Errorf("kafkaio: committed offset of %v for group %s: %w", tp, f.Cfg.Group, err)
		}
		if o, ok := or.Lookup(tp.Topic, tp.Partition); ok && o.Err == nil && o.At >= 0 {
			return o.At, nil
		}
		lo, err = f.admin.ListStartOffsets(ctx, tp.Topic) // nothing committed yet
	}
	if err != nil {
		return 0, fmt.Errorf("kafkaio: start offset of %v: %w", tp, err)
	}
	return lookup(lo, tp)
}

func (f *reader) SplitRestriction(_ TopicPartition, r offsetrange.Restriction) []offsetrange.Restriction {
	return []offsetrange.Restriction{r}
}

// RestrictionSize is the backlog in records, where known: the distance to
// the partition's end offset last seen by this worker (0 if none was).
func (f *reader) RestrictionSize(tp TopicPartition, r offsetrange.Restriction) float64 {
	if r.End != unbounded {
		return float64(r.End - r.Start)
	}
	tp.New = false
	f.mu.Lock()
	end, ok := f.ends[tp]
	f.mu.Unlock()
	if !ok {
		return 0
	}
	return float64(max(0, end-r.Start))
}

func (f *reader) CreateTracker(r offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(newTracker(r))
}

// TruncateRestriction lets a draining pipeline stop without reading on.
func (f *reader) TruncateRestriction(rt *sdf.LockRTracker, _ TopicPartition) offsetrange.Restriction {
	start := rt.GetRestriction().(offsetrange.Restriction).Start
	return offsetrange.Restriction{Start: start, End: start}
}

func (f *reader) InitialWatermarkEstimatorState(_ beam.EventTime, _ offsetrange.Restriction, tp TopicPartition) WatermarkState {
	return initialWatermarkState(f.ReadID, tp)
}

func (f *reader) CreateWatermarkEstimator(s WatermarkState) *watermarkEstimator {
	w := newWatermarkEstimator(s, f.Cfg.MaxOutOfOrder, f.registry())
	w.maxFuture = f.Cfg.MaxFuture.Milliseconds()
	return w
}

// registry is the process's watermark registry, unless a test gave the
// reader one of its own (a worker process of its own).
func (f *reader) registry() *watermarkRegistry {
	if f.reg != nil {
		return f.reg
	}
	return partitionWatermarks
}

func (f *reader) WatermarkEstimatorState(w *watermarkEstimator) WatermarkState { return w.state }

// sink receives what process reads. event's e is valid only during the
// call (it aliases the fetch buffer): copy what is kept.
type sink struct {
	event func(ms int64, e *event.Event)
	dead  func(deadletter.Record)
	late  func(beam.EventTime, string, event.Event)
}

// process reads from the restriction's start until it has read for
// MaxBundleTime or MaxBundleRecords, or caught up, then checkpoints.
func (f *reader) process(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker, tp TopicPartition, out sink) (sdf.ProcessContinuation, error) {
	rest := rt.GetRestriction().(offsetrange.Restriction)
	if rest.Start >= rest.End {
		return sdf.StopProcessing(), nil
	}
	if draining(f.Seq) {
		return f.drain(rt, tp, rest.Start), nil
	}
	counters := newReadCounters(tp, f.Prefix)
	f.commit(ctx, tp, we, rest.Start, counters)
	f.client.AddConsumePartitions(map[string]map[int32]kgo.Offset{tp.Topic: {tp.Partition: kgo.NewOffset().At(rest.Start)}})
	defer f.client.RemoveConsumePartitions(map[string][]int32{tp.Topic: {tp.Partition}})

	kind, kindOK := KindOfTopic(f.Prefix, tp.Topic)
	deadline := time.Now().Add(f.Cfg.MaxBundleTime)
	wmAtStart := we.state.WatermarkMs
	horizon := f.Cfg.LateHorizon.Milliseconds()
	last := rest.Start - 1
	defer func() {
		if we.state.EndOffset >= 0 {
			counters.lag = max(0, we.state.EndOffset-(last+1))
		}
		counters.flush(ctx)
	}()
	var n int
	for {
		// Short polls: prism (2.77) runs at most 8 bundles at once, and a
		// reader bundle waiting on Kafka holds one of them.
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		fetches := f.client.PollRecords(pctx, min(5000, f.Cfg.MaxBundleRecords-n))
		cancel()
		if err := ctx.Err(); err != nil {
			return sdf.ResumeProcessingIn(0), nil
		}
		var fetchErr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = err
			}
		})
		if fetchErr != nil {
			counters.fetchErrors++
			return f.fetchFailed(ctx, tp, we, fetchErr)
		}
		we.state.MissingSinceMs = 0
		got := 0
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Topic == tp.Topic && p.Partition == tp.Partition && p.HighWatermark >= 0 {
				we.state.EndOffset = p.HighWatermark
				f.noteEnd(tp, rt, p.HighWatermark)
			}
		})
		stop := false
		nowMs := time.Now().UnixMilli() // the processing clock, for this poll's records
		fetches.EachRecord(func(r *kgo.Record) {
			if stop || r.Offset <= last {
				return
			}
			if !rt.TryClaim(r.Offset) {
				stop = true
				return
			}
			last = r.Offset
			got++
			f.handle(r, tp, kind, kindOK, we, horizon, nowMs, counters, out)
		})
		n += got
		if stop || last >= rest.End-1 {
			return sdf.StopProcessing(), nil
		}
		if draining(f.Seq) {
			return f.drain(rt, tp, last+1), nil
		}
		if got == 0 {
			if we.state.EndOffset < 0 {
				// Fetches report the end offset only with records: ask.
				f.learnEndOffset(ctx, tp, we, rt)
			}
			if we.caughtUp(last + 1) {
				// Caught up: idle until more arrives, and let the
				// watermark move on with the clock.
				we.idle(time.Now())
				return sdf.ResumeProcessingIn(f.Cfg.IdleDelay), nil
			}
		}
		// Checkpoint on time, volume, or a big jump in event time, which
		// keeps the runner's view of lateness close to ours.
		if time.Now().After(deadline) || n >= f.Cfg.MaxBundleRecords || we.state.WatermarkMs-wmAtStart > int64(30*time.Minute/time.Millisecond) {
			return sdf.ResumeProcessingIn(0), nil
		}
	}
}

// drain ends the restriction before offset next, which is not read (see
// Drain), and holds next for CommitDrained.
func (f *reader) drain(rt *sdf.LockRTracker, tp TopicPartition, next int64) sdf.ProcessContinuation {
	if t, ok := rt.Rt.(*tracker); ok {
		t.finish()
	}
	f.stopAt(tp, next)
	return sdf.StopProcessing()
}

// fetchFailed decides what a fetch error means. A transient one (a broker
// away, a leader moving) is retried shortly from the same position, for
// as long as it lasts. A topic or partition that went missing (deleted)
// is retried the same way while another topic of the Read exists; once
// none has for Cfg.MissingTopicTimeout, and on any error Kafka calls not
// retriable (authorization, a bad request), the bundle fails with one line
// naming the partition, which fails the pipeline.
func (f *reader) fetchFailed(ctx context.Context, tp TopicPartition, we *watermarkEstimator, err error) (sdf.ProcessContinuation, error) {
	if permanent(err) {
		return sdf.StopProcessing(), fmt.Errorf("kafkaio: reading %v: %w (not retriable)", tp, err)
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
		now := time.Now().UnixMilli()
		if we.state.MissingSinceMs == 0 {
			we.state.MissingSinceMs = now
			slog.Warn("kafkaio: partition is gone; retrying while the Read's other topics flow", "partition", tp.String(), "error", err.Error())
		}
		if missing := time.Duration(now-we.state.MissingSinceMs) * time.Millisecond; missing >= f.Cfg.MissingTopicTimeout {
			if some, lerr := anyTopicExists(ctx, f.admin, f.Cfg.Topics); lerr == nil && !some {
				return sdf.StopProcessing(), fmt.Errorf("kafkaio: reading %v: %w for %v, and no topic with prefix %q exists",
					tp, err, missing.Round(time.Second), f.Prefix)
			}
		}
	}
	return sdf.ResumeProcessingIn(time.Second), nil
}

// permanent reports errors that retrying cannot fix: those Kafka marks not
// retriable (authorization, SASL, a bad request). Network errors and
// Kafka's retriable errors are not.
func permanent(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// learnEndOffset asks the broker for a partition's end offset, which a
// fetch reports only when it returns records (an empty partition, or one
// read to its end in an earlier bundle, never does). On an error the end
// stays unknown and the partition keeps polling, which is safe.
func (f *reader) learnEndOffset(ctx context.Context, tp TopicPartition, we *watermarkEstimator, rt *sdf.LockRTracker) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lo, err := f.admin.ListEndOffsets(lctx, tp.Topic)
	if err != nil {
		return
	}
	if end, err := lookup(lo, tp); err == nil {
		we.state.EndOffset = end
		f.noteEnd(tp, rt, end)
	}
}

// commit commits the position a restriction starts at to the group, if
// configured to. A resumed restriction exists only once the runner has
// durably committed the bundle that checkpointed it, with its output, so
// its start is safe to commit on any runner: this is Kafka's "commit what
// the pipeline has persisted" without Beam's bundle finalization, which
// the Go SDK (2.77) runs only for the first bundle of each reused plan.
// Each bundle's reads are committed when the next one starts, so a
// restart from the committed offsets reads again at most the last bundle
// before the stop (none if it was idle). A failed commit is counted and
// retried by the next bundle.
func (f *reader) commit(ctx context.Context, tp TopicPartition, we *watermarkEstimator, at int64, c *readCounters) {
	if !f.Cfg.CommitOffsets || at <= we.state.Committed {
		return
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := f.admin.CommitOffsets(cctx, f.Cfg.Group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		c.commitErrors++
		return
	}
	we.state.Committed = at
}

func (f *reader) handle(r *kgo.Record, tp TopicPartition, kind event.Kind, kindOK bool, we *watermarkEstimator, horizon, nowMs int64,
	c *readCounters, out sink) {
	c.records++
	dead := func(reason, detail string) {
		c.dead[reason]++
		out.dead(deadletter.Record{Pipeline: "stream", Source: tp.Topic + "/" + strconv.Itoa(int(tp.Partition)), Offset: r.Offset,
			Index: -1, Lost: 1, Reason: reason, Detail: detail, Payload: r.Value})
	}
	var ev event.Event
	if err := f.dec.DecodeSingle(r.Value, &ev); err != nil {
		dead("undecodable", err.Error())
		return
	}
	if kindOK && ev.Kind != kind {
		dead("kind_mismatch", fmt.Sprintf("a %s record on topic %s", ev.Kind, tp.Topic))
		return
	}
	if reason := event.Validate(&ev); reason != "" {
		dead(string(reason), ev.String())
		return
	}
	if reason := event.CheckFuture(&ev, nowMs, f.Cfg.MaxFuture); reason != "" {
		dead(string(reason), fmt.Sprintf("more than %v ahead of the clock (%s): %s", f.Cfg.MaxFuture,
			time.UnixMilli(nowMs).UTC().Format(time.RFC3339), ev.String()))
		return
	}
	ms, _ := ev.BucketTime()
	if horizon > 0 && ms < we.state.WatermarkMs-horizon {
		c.late++
		out.late(mtime.FromMilliseconds(we.state.WatermarkMs), fmt.Sprintf("%s/%d/%d", tp.Topic, tp.Partition, r.Offset), ev.Clone())
		return
	}
	we.observe(ms)
	out.event(ms, &ev)
}

// readCounters batches Beam metric updates for one ProcessElement.
//
// Counters are per kind, never per app (the apps are the data's, and
// unbounded): "<metric>/<kind>" in namespace lumen.kafka, a kind being
// "unknown" for a topic that is not one of the three. The gauge
// lumen.kafka.lag "<topic>/<partition>" is the records of the partition
// not yet read as of the bundle's last poll (bounded by the topics'
// partitions); cmd/stream serves both at /metrics (launch.StreamMetrics).
type readCounters struct {
	tp                                       TopicPartition
	kind                                     string
	records, late, fetchErrors, commitErrors int64
	dead                                     map[string]int64
	lag                                      int64 // -1: unknown
}

func newReadCounters(tp TopicPartition, prefix string) *readCounters {
	kind := "unknown"
	if k, ok := KindOfTopic(prefix, tp.Topic); ok {
		kind = k.String()
	}
	return &readCounters{tp: tp, kind: kind, dead: map[string]int64{}, lag: -1}
}

// LagGauge is the namespace of the readers' per-partition lag gauges.
const LagGauge = "lumen.kafka.lag"

func (c *readCounters) flush(ctx context.Context) {
	ns, k := "lumen.kafka", "/"+c.kind
	beam.NewCounter(ns, "records_read"+k).Inc(ctx, c.records)
	if c.late > 0 {
		beam.NewCounter(ns, "late_beyond_horizon"+k).Inc(ctx, c.late)
	}
	if c.fetchErrors > 0 {
		beam.NewCounter(ns, "fetch_errors"+k).Inc(ctx, c.fetchErrors)
	}
	if c.commitErrors > 0 {
		beam.NewCounter(ns, "commit_errors"+k).Inc(ctx, c.commitErrors)
	}
	for reason, n := range c.dead {
		beam.NewCounter(ns, "deadletter_"+reason+k).Inc(ctx, n)
	}
	if c.lag >= 0 {
		beam.NewGauge(LagGauge, c.tp.Topic+"/"+strconv.Itoa(int(c.tp.Partition))).Set(ctx, c.lag)
	}
}
