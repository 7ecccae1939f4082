package pipelines

import (
	"errors"
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/transforms"
)

// StreamConfig configures the speed layer (DESIGN §3, streaming).
type StreamConfig struct {
	// Kafka says where events come from; its topics default to the three
	// kinds under TopicPrefix.
	Kafka       kafkaio.ReadConfig
	TopicPrefix string
	// Store is the store URL speed rows go to.
	Store string
	// Precision of the daily sketches. Default 14.
	Precision uint8
	// Every is how often each (kind, app)'s minute window fires a delta
	// early (and late panes are counted); minute, hour and day totals and
	// today's sketches update on every delta. Default 2 s: counts are live
	// within seconds.
	Every time.Duration
	// LateHorizon is how long behind the watermark late events are still
	// counted through windows; beyond it the Kafka reader counts them one
	// by one. Default 24 h. (Late events never reach the speed counts: the
	// allowed lateness of DESIGN §3 is 0.)
	LateHorizon time.Duration
	// MaxFuture: an event whose event or received time is more than this
	// ahead of the processing clock is a dead letter (future_time), as in
	// the batch, and no partition watermark passes the clock plus this.
	// Default event.DefaultMaxFuture (1 h).
	MaxFuture time.Duration
	// NoDeadLetterTopic keeps dead letters off <prefix>deadletter (they are
	// still counted). Default false: they are sent there.
	NoDeadLetterTopic bool
	// Run names this run of the stream in the speed tables, which add up
	// the runs (see serving.WithRun). Default: the start time, so a
	// restarted stream adds to what the previous run counted today.
	Run string
}

// EnsureDefaults fills zero values.
func (c *StreamConfig) EnsureDefaults() {
	if c.TopicPrefix == "" {
		c.TopicPrefix = kafkaio.DefaultTopicPrefix
	}
	if len(c.Kafka.Topics) == 0 {
		for _, k := range event.Kinds {
			c.Kafka.Topics = append(c.Kafka.Topics, kafkaio.Topic(c.TopicPrefix, k))
		}
	}
	if c.Precision == 0 {
		c.Precision = hll.DefaultPrecision
	}
	if c.Every == 0 {
		c.Every = 2 * time.Second
	}
	if c.LateHorizon == 0 {
		c.LateHorizon = 24 * time.Hour
	}
	if c.Run == "" {
		c.Run = time.Now().UTC().Format("20060102T150405.000000000Z")
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = event.DefaultMaxFuture
	}
	c.Kafka.LateHorizon = c.LateHorizon
	c.Kafka.MaxFuture = c.MaxFuture
	c.Kafka.EnsureDefaults()
}

// Validate reports every problem at once.
func (c *StreamConfig) Validate() error {
	var errs []error
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Store == "" {
		errs = append(errs, errors.New("store: required"))
	}
	if c.Precision < hll.MinPrecision || c.Precision > hll.MaxPrecision {
		errs = append(errs, fmt.Errorf("precision: %d", c.Precision))
	}
	if c.Every < 100*time.Millisecond {
		errs = append(errs, errors.New("every: at least 100ms"))
	}
	return errors.Join(errs...)
}

// BuildStream adds the speed layer to s: Kafka → validate → bucket →
// event-time windows with the shared aggregation → speed tables; late
// events → late counts; dead letters → the dead-letter topic. It runs on
// prism (and other streaming runners).
func BuildStream(s beam.Scope, cfg StreamConfig) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	s = s.Scope("pipelines.Stream")
	partials, dead, tooLate := kafkaio.ReadPartials(s, cfg.Kafka, cfg.TopicPrefix, time.Minute, cfg.Combine())
	StreamAggregates(s, partials, tooLate, cfg)
	if !cfg.NoDeadLetterTopic {
		kafkaio.WriteDeadLetters(s, cfg.Kafka.Brokers, cfg.Kafka.Security, cfg.TopicPrefix, dead)
	}
	return nil
}

// StreamExperiments are the pipeline options the stream needs of a runner,
// which its launcher sets (launch.RunStream): the graph builders change
// no option. prism_disable_sdf_split turns off prism's splitting of slow
// bundles, which (2.77) hands a split's residual keys to a new bundle
// while the primary still runs the same keys, so two bundles of a
// stateful stage race on one key's state and updates are lost (Totals
// lost deltas in ~1 run of 3). The Kafka reader checkpoints itself and
// needs no runner splits; other runners ignore the experiment.
var StreamExperiments = []string{"prism_disable_sdf_split"}

// StreamOutputs are the speed layer's rows before they are written.
type StreamOutputs struct {
	Minutes, Hours, Days beam.PCollection // aggregate.CountRow
	Users                beam.PCollection // aggregate.UserRow
	Late, TooLate        beam.PCollection // aggregate.LateRow
}

// Combine is the speed layer's combine: the batch's, counting per minute.
func (c StreamConfig) Combine() aggregate.CombineFn {
	return aggregate.CombineFn{Gran: aggregate.Minute, Precision: c.Precision}
}

// StreamAggregates computes the speed layer from partial aggregates (per
// (kind, app) and minute, timestamped inside their minute, as
// kafkaio.ReadPartials makes them) and events the reader found beyond the
// lateness horizon, writes it to cfg.Store, and returns the rows. Tests
// drive it with TestStream.
//
// Minute windows merge the partials with the batch's combine and fire
// every cfg.Every: early and on-time panes are deltas that Totals
// accumulates into minute, hour and day totals and today's sketches
// (hours and days cascade from the minutes, so every granularity drops
// exactly the events the minutes drop); late panes are the late counts.
//
//	partials: PCollection<KV<aggregate.AppKey, aggregate.Agg>>, tooLate: PCollection<KV<string, event.Event>>
func StreamAggregates(s beam.Scope, partials, tooLate beam.PCollection, cfg StreamConfig) StreamOutputs {
	cfg.EnsureDefaults()
	lateness := cfg.LateHorizon + time.Hour
	deltas, late := transforms.PaneDeltas(s, partials, transforms.WindowConfig{
		Size: time.Minute, Combine: cfg.Combine(), Every: cfg.Every, AllowedLateness: lateness})
	out := StreamOutputs{
		Minutes: transforms.CountRows(s, transforms.Totals(s, deltas, aggregate.Minute, lateness, false), aggregate.Minute),
		Hours:   transforms.CountRows(s, transforms.Totals(s, deltas, aggregate.Hour, lateness, false), aggregate.Hour),
		Late:    transforms.LateRowsOf(s, late, aggregate.Minute, aggregate.Hour),
		TooLate: transforms.TooLateRows(s, tooLate, aggregate.Minute, aggregate.Hour),
	}
	days := transforms.Totals(s, deltas, aggregate.Day, lateness, true)
	out.Days = transforms.CountRows(s, days, aggregate.Day)
	out.Users = transforms.UserRows(s, days)
	for _, rows := range []beam.PCollection{out.Minutes, out.Hours, out.Days} {
		WriteSpeedCounts(s, cfg.Store, cfg.Run, rows)
	}
	WriteSpeedUsers(s, cfg.Store, cfg.Run, out.Users)
	WriteLate(s, cfg.Store, cfg.Run, out.Late)
	WriteLate(s, cfg.Store, cfg.Run, out.TooLate)
	return out
}
