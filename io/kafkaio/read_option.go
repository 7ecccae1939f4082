package kafkaio

import (
	"errors"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/event"
)

// ReadConfig configures Read. Times are milliseconds since the epoch so the
// config serialises into the pipeline as plain fields.
type ReadConfig struct {
	Brokers []string
	// Security says how to reach the brokers (TLS, SASL); the zero value
	// is plaintext.
	Security Security
	Topics   []string
	// Start is where reading starts; default StartLatest. StartTimeMs is
	// used with StartAtTime.
	Start       StartPosition
	StartTimeMs int64
	// StartOffsets, when set, is where each partition's reader starts,
	// keyed by TopicPartition.String(), and Start is not looked at: a
	// launcher resolves the start once (ResolveStart) and may move it
	// (serving.PlanStreamStart), so every worker starts where the plan
	// says. A partition not in it appeared later and is read from its
	// beginning.
	StartOffsets Offsets
	// Group names the consumer group for StartCommitted and CommitOffsets.
	Group string
	// CommitOffsets commits each partition's position to Group once the
	// runner has persisted what was read before it: when the next bundle
	// of the partition starts.
	CommitOffsets bool
	// Bounded reads to the end offsets found when a partition is first
	// seen, or, if EndTimeMs > 0, to the first offset at or after it, then
	// stops: for replays and tests. Partition discovery stops too.
	Bounded   bool
	EndTimeMs int64
	// MaxOutOfOrder bounds how far behind the newest event time of a
	// partition its events may be: the watermark is the newest event time
	// minus this. Default 2 minutes.
	MaxOutOfOrder time.Duration
	// MaxFuture bounds how far ahead of the processing clock an event's
	// event or received time may be (event.CheckFuture): one further ahead
	// is a dead letter with reason future_time, the batch's rule, and no
	// partition watermark ever passes the clock plus MaxFuture. A producer
	// sending microseconds for milliseconds would otherwise push its
	// partition's watermark decades ahead, and every later event of the
	// partition would be late. Default event.DefaultMaxFuture (1 h).
	MaxFuture time.Duration
	// LateHorizon: events further behind their partition's watermark than
	// this go to the late output instead of the events output, so
	// downstream windows never have to keep state that long. 0: off.
	LateHorizon time.Duration
	// DiscoveryInterval is how often new partitions are looked for.
	// Default 10 s.
	DiscoveryInterval time.Duration
	// MaxBundleTime and MaxBundleRecords bound one ProcessElement before it
	// checkpoints, which bounds latency. Defaults 250 ms and 1,000,000: a
	// reader bundle holds one of the runner's bundle slots (prism runs 8
	// at once) while it reads, and one reader per partition holding them
	// longer starves the triggers downstream (p99 produce-to-store latency
	// at 5,000 events/s, 9 partitions: 15 s with 1 s, see cmd/bench stream).
	// The record bound only matters when catching up, where each bundle
	// costs the runner a round of scheduling: time bounds it there too.
	MaxBundleTime    time.Duration
	MaxBundleRecords int
	// IdleDelay is how long a caught-up partition waits before polling
	// again. Default 200 ms.
	IdleDelay time.Duration
	// MissingTopicTimeout is how long every topic may be missing (never
	// created, or deleted) before an unbounded read fails: a wrong prefix
	// or the wrong brokers. While some topic exists, a missing one is
	// looked for at every DiscoveryInterval, with a warning, and read from
	// its start once it appears. Default 30 s.
	MissingTopicTimeout time.Duration
}

// EnsureDefaults fills zero values.
func (c *ReadConfig) EnsureDefaults() {
	if c.Start == "" {
		c.Start = StartLatest
	}
	if c.MaxOutOfOrder == 0 {
		c.MaxOutOfOrder = 2 * time.Minute
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = event.DefaultMaxFuture
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = 10 * time.Second
	}
	if c.MaxBundleTime == 0 {
		c.MaxBundleTime = 250 * time.Millisecond
	}
	if c.MaxBundleRecords == 0 {
		c.MaxBundleRecords = 1_000_000
	}
	if c.IdleDelay == 0 {
		c.IdleDelay = 200 * time.Millisecond
	}
	if c.MissingTopicTimeout == 0 {
		c.MissingTopicTimeout = 30 * time.Second
	}
}

// Validate reports every problem at once.
func (c *ReadConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one required"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("topics: at least one required"))
	}
	switch c.Start {
	case StartLatest, StartEarliest:
	case StartCommitted:
		if c.Group == "" {
			errs = append(errs, errors.New("start=committed needs a group"))
		}
	case StartAtTime:
		if c.StartTimeMs <= 0 {
			errs = append(errs, errors.New("start at a time needs the time"))
		}
	default:
		errs = append(errs, fmt.Errorf("start: %q", c.Start))
	}
	if c.CommitOffsets && c.Group == "" {
		errs = append(errs, errors.New("commit_offsets needs a group"))
	}
	if c.MaxBundleTime < 0 || c.MaxBundleRecords < 0 || c.IdleDelay < 0 || c.DiscoveryInterval < 0 || c.MissingTopicTimeout < 0 {
		errs = append(errs, errors.New("bundle, idle, discovery and missing-topic limits must not be negative"))
	}
	if c.MaxOutOfOrder < 0 || c.LateHorizon < 0 || c.MaxFuture < 0 {
		errs = append(errs, errors.New("max_out_of_order, late_horizon and max_future must not be negative"))
	}
	if err := c.Security.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafkaio: %w", errors.Join(errs...))
	}
	return nil
}
