package kafkaio

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/aggregate"
	_ "github.com/lumenhq/lumen/coders" // what Read and ReadPartials emit, even in a graph without transforms
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

func init() {
	register.DoFn7x2[context.Context, *watermarkEstimator, *sdf.LockRTracker, TopicPartition,
		func(beam.EventTime, event.Event), func(deadletter.Record), func(beam.EventTime, string, event.Event),
		sdf.ProcessContinuation, error](&readFn{})
	register.DoFn7x2[context.Context, *watermarkEstimator, *sdf.LockRTracker, TopicPartition,
		func(beam.EventTime, aggregate.AppKey, aggregate.Agg), func(deadletter.Record), func(beam.EventTime, string, event.Event),
		sdf.ProcessContinuation, error](&readPartialsFn{})
	register.Emitter2[beam.EventTime, event.Event]()
	register.Emitter3[beam.EventTime, aggregate.AppKey, aggregate.Agg]()
	register.Emitter1[deadletter.Record]()
	register.Emitter3[beam.EventTime, string, event.Event]()
}

// Read reads lumen's event topics. It panics if cfg does not validate
// (ReadConfig.Validate): a bad configuration fails when the graph is
// built, not on the workers.
//
// It returns the valid events, each timestamped with its event time (the
// time it is bucketed by); the dead letters (undecodable messages, a kind
// that does not match its topic, events failing validation), each with the
// topic, partition, offset and reason; and the events further behind their
// partition's watermark than cfg.LateHorizon, keyed by "topic/partition/offset".
//
//	() → PCollection<event.Event>, PCollection<deadletter.Record>, PCollection<KV<string, event.Event>>
func Read(s beam.Scope, cfg ReadConfig, topicPrefix string) (events, dead, late beam.PCollection) {
	s = s.Scope("kafkaio.Read")
	mustValidate("Read", &cfg)
	f := &readFn{reader: newReader(cfg, topicPrefix)}
	return beam.ParDo3(s, f, discover(s, cfg, topicPrefix, f.Seq))
}

// ReadPartials reads lumen's event topics like Read, but aggregates the
// valid events as it reads them, the way the batch layer's readers do
// (DESIGN §7a): each bundle adds its partition's events to one partial
// Agg per (kind, app) and fixed event-time window of size, with fn's
// CreateAccumulator and AddEvent, and emits the partials when it ends,
// each timestamped with the newest event time in it. Windowed with the
// same size, a partial is on time or late for the runner exactly as its
// events would have been: they reach their window together, in one
// bundle's output. Only partials cross the shuffle, not single events.
//
//	() → PCollection<KV<aggregate.AppKey, aggregate.Agg>>, PCollection<deadletter.Record>, PCollection<KV<string, event.Event>>
func ReadPartials(s beam.Scope, cfg ReadConfig, topicPrefix string, size time.Duration, fn aggregate.CombineFn) (partials, dead, late beam.PCollection) {
	s = s.Scope("kafkaio.ReadPartials")
	mustValidate("ReadPartials", &cfg)
	if size <= 0 {
		panic(fmt.Sprintf("kafkaio.ReadPartials: window size %v, want > 0", size))
	}
	f := &readPartialsFn{reader: newReader(cfg, topicPrefix), WindowMs: size.Milliseconds(), Fn: fn}
	return beam.ParDo3(s, f, discover(s, cfg, topicPrefix, f.Seq))
}

// mustValidate fails the graph's construction on a bad configuration, as
// Beam transforms do: a Read cannot be built from it.
func mustValidate(name string, cfg *ReadConfig) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("kafkaio.%s: %v", name, err))
	}
}

// discover discovers the partitions of cfg's topics, which start with
// topicPrefix, for the Read numbered seq (see Drain).
func discover(s beam.Scope, cfg ReadConfig, topicPrefix string, seq int64) beam.PCollection {
	cfg.EnsureDefaults()
	return beam.ParDo(s, &discoverFn{kafkaFn: kafkaFn{Brokers: cfg.Brokers, Security: cfg.Security}, Bounded: cfg.Bounded,
		IntervalMs: cfg.DiscoveryInterval.Milliseconds(), MissingTimeoutMs: cfg.MissingTopicTimeout.Milliseconds(),
		Topics: cfg.Topics, Prefix: topicPrefix, Seq: seq},
		beam.CreateList(s, cfg.Topics))
}

func newReader(cfg ReadConfig, topicPrefix string) reader {
	cfg.EnsureDefaults()
	seq := readSeq.Add(1)
	id := fmt.Sprintf("read-%d-%d", time.Now().UnixNano(), seq)
	return reader{kafkaFn: kafkaFn{Brokers: cfg.Brokers, Security: cfg.Security}, Cfg: cfg, Prefix: topicPrefix, ReadID: id, Seq: seq}
}

// readFn emits each event.
type readFn struct{ reader }

func (f *readFn) ProcessElement(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker,
	tp TopicPartition, emit func(beam.EventTime, event.Event), emitDead func(deadletter.Record),
	emitLate func(beam.EventTime, string, event.Event)) (sdf.ProcessContinuation, error) {
	return f.process(ctx, we, rt, tp, sink{
		event: func(ms int64, e *event.Event) { emit(mtime.FromMilliseconds(ms), e.Clone()) },
		dead:  emitDead, late: emitLate,
	})
}

// readPartialsFn emits, per bundle, one partial per (kind, app) and window.
type readPartialsFn struct {
	reader
	WindowMs int64
	Fn       aggregate.CombineFn
}

func (f *readPartialsFn) ProcessElement(ctx context.Context, we *watermarkEstimator, rt *sdf.LockRTracker,
	tp TopicPartition, emit func(beam.EventTime, aggregate.AppKey, aggregate.Agg), emitDead func(deadletter.Record),
	emitLate func(beam.EventTime, string, event.Event)) (sdf.ProcessContinuation, error) {
	parts := aggregate.WindowPartials{SizeMs: f.WindowMs}
	pc, err := f.process(ctx, we, rt, tp, sink{
		event: func(ms int64, e *event.Event) {
			p := parts.At(aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}, ms, f.Fn.CreateAccumulator)
			f.Fn.AddEvent(p.Agg, e)
		},
		dead: emitDead, late: emitLate,
	})
	parts.Drain(func(k aggregate.WindowKey, p *aggregate.WindowPartial) {
		emit(mtime.FromMilliseconds(p.Newest), k.Key, p.Agg)
	})
	return pc, err
}
