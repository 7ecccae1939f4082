package archive

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/s3fs"
)

// Config configures an Archiver. EnsureDefaults fills the zero values;
// Validate reports every problem at once.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// TopicPrefix prefixes the three kind topics. Default
	// kafkaio.DefaultTopicPrefix ("lumen.").
	TopicPrefix string
	// Group is the consumer group. Default "lumen-archive".
	Group string
	// InstanceID, if set, makes this member static (KIP-345): a restart
	// with the same id takes its partitions back without a rebalance and
	// without waiting for the old session to time out. Default "" (dynamic).
	InstanceID string
	// SessionTimeout is the group session timeout. Default 45 s.
	SessionTimeout time.Duration
	// Start is where a partition without a committed offset starts:
	// kafkaio.StartEarliest (the default: an archiver must not skip data)
	// or kafkaio.StartLatest.
	Start kafkaio.StartPosition

	// Output is the archive root: a local directory or s3://bucket/prefix.
	// Required.
	Output string
	// S3 configures s3:// access.
	S3 s3fs.Options
	// Codec compresses the files. The zero value is null; cmd/archive
	// defaults to snappy.
	Codec avroio.Codec

	// RollBytes: a segment rolls once its records (Avro bytes, before
	// compression) reach this. Default 64 MiB.
	RollBytes int64
	// RollRecords: a segment rolls once it holds this many records.
	// Default 1,000,000.
	RollRecords int64
	// RollInterval: a segment rolls this long after its first record.
	// Default 1 minute. It bounds how far the committed offsets trail.
	RollInterval time.Duration
	// MaxHourFiles: a segment rolls before it would open more hour files
	// than this, which bounds open files (and, on S3, upload buffers) per
	// partition when offline devices deliver days of events at once.
	// Default 64.
	MaxHourFiles int

	// MaxFuture: a record whose event_time or received_time is more than
	// this ahead of the processing clock (Now) is a dead letter with
	// reason future_time (DESIGN §3, time bounds), kept whole in the
	// dead-letter output and never in a raw directory of the future.
	// Default event.DefaultMaxFuture (1 h).
	MaxFuture time.Duration

	// SealDelay is how long after its received_time a record may still
	// reach Kafka (collector buffering, producer retries, clock
	// differences): an hour is sealed once the archiver has committed
	// what every partition held SealDelay after the hour ended (see
	// seal.go). Default 5 minutes. A record later than that is still
	// archived, into its sealed hour (Stats.ArchivedAfterSeal).
	SealDelay time.Duration
	// SealInterval is how often the end and committed offsets are read to
	// seal hours. Default 1 minute; negative turns sealing off.
	SealInterval time.Duration
	// SealFrom is the first hour to seal of a kind that has no seal yet
	// (a first deployment, whose log the operator knows to be whole from
	// then on). Default: the hour of the kind's first complete
	// observation. Ignored once a kind has a seal: seals only move
	// forward, from the newest one.
	SealFrom time.Time
	// Now is the processing clock of the future_time check and of the
	// seals. Default time.Now; tests set it.
	Now func() time.Time

	// ProgressInterval is how often a progress line is logged. Default
	// 30 s; negative turns it off.
	ProgressInterval time.Duration
	// Logger receives progress and warnings. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are extra franz-go client options: TLS and SASL
	// (kafkaio.Security's Opts, as cmd/archive's --kafka_* flags give
	// them), or test settings.
	KafkaOptions []kgo.Opt
}

// DefaultGroup is the default consumer group.
const DefaultGroup = "lumen-archive"

// EnsureDefaults fills zero values.
func (c *Config) EnsureDefaults() {
	if c.TopicPrefix == "" {
		c.TopicPrefix = kafkaio.DefaultTopicPrefix
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.Start == "" {
		c.Start = kafkaio.StartEarliest
	}
	c.Output = strings.TrimSuffix(c.Output, "/")
	if c.RollBytes == 0 {
		c.RollBytes = 64 << 20
	}
	if c.RollRecords == 0 {
		c.RollRecords = 1_000_000
	}
	if c.RollInterval == 0 {
		c.RollInterval = time.Minute
	}
	if c.MaxHourFiles == 0 {
		c.MaxHourFiles = 64
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = event.DefaultMaxFuture
	}
	if c.SealDelay == 0 {
		c.SealDelay = 5 * time.Minute
	}
	if c.SealInterval == 0 {
		c.SealInterval = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once, naming each field.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one required"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("group: required"))
	}
	if c.Output == "" {
		errs = append(errs, errors.New("output: required (a directory or s3://bucket/prefix)"))
	}
	switch c.Start {
	case kafkaio.StartEarliest, kafkaio.StartLatest:
	default:
		errs = append(errs, fmt.Errorf("start: %q, want earliest or latest", c.Start))
	}
	if c.Codec != avroio.CodecNull && c.Codec != avroio.CodecDeflate && c.Codec != avroio.CodecSnappy {
		errs = append(errs, fmt.Errorf("codec: %v, want null, deflate or snappy", c.Codec))
	}
	if c.RollBytes < 1 {
		errs = append(errs, fmt.Errorf("roll_bytes: %d, want >= 1", c.RollBytes))
	}
	if c.RollRecords < 1 {
		errs = append(errs, fmt.Errorf("roll_records: %d, want >= 1", c.RollRecords))
	}
	if c.RollInterval <= 0 {
		errs = append(errs, fmt.Errorf("roll_interval: %v, want > 0", c.RollInterval))
	}
	if c.MaxHourFiles < 1 {
		errs = append(errs, fmt.Errorf("max_hour_files: %d, want >= 1", c.MaxHourFiles))
	}
	if c.MaxFuture < 0 {
		errs = append(errs, fmt.Errorf("max_future: %v, want > 0", c.MaxFuture))
	}
	if c.SealDelay < 0 {
		errs = append(errs, fmt.Errorf("seal_delay: %v, want > 0", c.SealDelay))
	}
	if c.SessionTimeout <= 0 {
		errs = append(errs, fmt.Errorf("session_timeout: %v, want > 0", c.SessionTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("archive: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) topics() []string {
	var ts []string
	for _, k := range event.Kinds {
		ts = append(ts, c.topic(k))
	}
	return ts
}

func (c *Config) topic(k event.Kind) string { return kafkaio.Topic(c.TopicPrefix, k) }
