// Command archive runs lumen's archiver: a Kafka consumer group that lands
// every event record in the raw Avro layout, by arrival hour, with each
// partition's offsets committed only once its files are durable
// (DESIGN §2, package archive). It runs until SIGINT or SIGTERM, then rolls
// and commits what it holds and exits 0.
//
//	go run ./cmd/archive --brokers=localhost:9092 --output=/data/lumen
//	go run ./cmd/archive --brokers=k1:9092,k2:9092 --output=s3://bucket/lumen --instance_id=$HOSTNAME
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lumenhq/lumen/archive"
	"github.com/lumenhq/lumen/cmd/internal/buildinfo"
	"github.com/lumenhq/lumen/cmd/internal/help"
	"github.com/lumenhq/lumen/cmd/internal/kafkaflags"
	"github.com/lumenhq/lumen/cmd/internal/metricsflags"
	"github.com/lumenhq/lumen/cmd/internal/s3flags"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/kafkaio"
)

// beamFlags are the flags of the imported packages (Beam's): the first
// variable of the package, so it is set before lumen's flags are defined.
var beamFlags = help.Snapshot(flag.CommandLine)

var (
	brokers          = flag.String("brokers", "localhost:9092", "Kafka seed brokers, comma-separated.")
	topicPrefix      = flag.String("topic_prefix", kafkaio.DefaultTopicPrefix, "Prefix of the event topics (<prefix>app_load, …).")
	group            = flag.String("group", archive.DefaultGroup, "Consumer group; its committed offsets are the archiver's only state.")
	instanceID       = flag.String("instance_id", "", "Static group membership id (e.g. the pod name): a restart resumes without a rebalance.")
	sessionTimeout   = flag.Duration("session_timeout", 45*time.Second, "Group session timeout.")
	start            = flag.String("start", "earliest", "Where a partition with no committed offset starts: earliest or latest.")
	output           = flag.String("output", "", "Archive root: a directory or s3://bucket/prefix (required).")
	codec            = flag.String("codec", "snappy", "Block codec of the files: null, deflate or snappy.")
	rollBytes        = flag.Int64("roll_bytes", 64<<20, "Roll a partition's segment at this many record bytes (before compression).")
	rollRecords      = flag.Int64("roll_records", 1_000_000, "Roll a partition's segment at this many records.")
	rollInterval     = flag.Duration("roll_interval", time.Minute, "Roll a partition's segment this long after its first record.")
	maxHourFiles     = flag.Int("max_hour_files", 64, "Roll a segment before it opens more arrival-hour files than this.")
	maxFuture        = flag.Duration("max_future", event.DefaultMaxFuture, "Dead-letter (future_time) a record whose event or received time is this far ahead of the clock.")
	sealDelay        = flag.Duration("seal_delay", 5*time.Minute, "How late after its received_time a record may reach Kafka; an hour is sealed this long after it ends, once committed.")
	sealInterval     = flag.Duration("seal_interval", time.Minute, "How often to check which arrival hours can be sealed (0: never seal).")
	sealFrom         = flag.String("seal_from", "", "First hour to seal (RFC3339 or YYYY-MM-DD) of a kind with no seal yet; default: when the archiver first catches up.")
	progressInterval = flag.Duration("progress_interval", 30*time.Second, "How often to log a progress line (0: never).")
	s3Flags          = s3flags.Register(flag.CommandLine)
	kafkaSec         = kafkaflags.Register(flag.CommandLine)
	metricsAddr      = metricsflags.Register(flag.CommandLine, "127.0.0.1:9465")
)

func main() {
	version := buildinfo.Flag(flag.CommandLine)
	h := help.Install(flag.CommandLine, beamFlags, synopsis, groups...)
	flag.Parse()
	buildinfo.ExitIfAsked(version, "archive")
	h.ExitIfBeamAsked()
	cfg, err := config()
	if err != nil {
		fmt.Fprintln(os.Stderr, "archive:", err)
		os.Exit(2)
	}
	a, err := archive.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr, err := metricsflags.Serve(ctx, "archive", *metricsAddr, metricsflags.NewRegistry(archive.Metrics{A: a})); err != nil {
		fmt.Fprintln(os.Stderr, "archive:", err)
		os.Exit(2)
	} else if addr != "" {
		fmt.Fprintf(os.Stderr, "archive: metrics at http://%s/metrics\n", addr)
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// config turns the flags into an archive.Config, naming the flag of every
// problem.
func config() (archive.Config, error) {
	var errs []error
	c, err := avroio.ParseCodec(*codec)
	if err != nil {
		errs = append(errs, fmt.Errorf("--codec: %w", err))
	}
	s3o, err := s3Flags.Options()
	if err != nil {
		errs = append(errs, err)
	}
	st := kafkaio.StartPosition(*start)
	if st != kafkaio.StartEarliest && st != kafkaio.StartLatest {
		errs = append(errs, fmt.Errorf("--start: %q, want earliest or latest", *start))
	}
	if *output == "" {
		errs = append(errs, errors.New("--output is required (a directory or s3://bucket/prefix)"))
	}
	var bs []string
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		errs = append(errs, errors.New("--brokers: at least one required"))
	}
	sec, err := kafkaSec.Security()
	if err != nil {
		errs = append(errs, err)
	}
	secOpts, err := sec.Opts()
	if err != nil && sec.Validate() == nil {
		errs = append(errs, err)
	}
	if *maxFuture <= 0 {
		errs = append(errs, fmt.Errorf("--max_future: %v, want > 0", *maxFuture))
	}
	if *sealDelay <= 0 {
		errs = append(errs, fmt.Errorf("--seal_delay: %v, want > 0", *sealDelay))
	}
	seals := *sealInterval
	if seals <= 0 {
		seals = -1
	}
	var from time.Time
	if *sealFrom != "" {
		if from, err = time.Parse(time.RFC3339, *sealFrom); err != nil {
			if from, err = time.Parse(time.DateOnly, *sealFrom); err != nil {
				errs = append(errs, fmt.Errorf("--seal_from: %q, want RFC3339 or YYYY-MM-DD", *sealFrom))
			}
		}
	}
	progress := *progressInterval
	if progress == 0 {
		progress = -1
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	return archive.Config{
		Brokers: bs, TopicPrefix: *topicPrefix, Group: *group, InstanceID: *instanceID, SessionTimeout: *sessionTimeout,
		Start: st, Output: *output, S3: s3o, Codec: c,
		RollBytes: *rollBytes, RollRecords: *rollRecords, RollInterval: *rollInterval, MaxHourFiles: *maxHourFiles,
		MaxFuture: *maxFuture, SealDelay: *sealDelay, SealInterval: seals, SealFrom: from,
		ProgressInterval: progress, Logger: logger, KafkaOptions: secOpts,
	}, errors.Join(errs...)
}

const synopsis = `usage: archive [flags]

The archiver: a Kafka consumer group that lands every record, exactly once,
as Avro files in the raw layout (--output, by arrival hour), and seals the
hours it has completed.`

var groups = []help.Group{
	{Title: "Kafka", Flags: []string{"brokers", "topic_prefix", "group", "instance_id", "start", "session_timeout"}},
	{Title: "Kafka security", Flags: []string{"kafka_tls", "kafka_tls_ca", "kafka_tls_cert", "kafka_tls_key", "kafka_tls_server_name", "kafka_tls_insecure", "kafka_sasl", "kafka_user", "kafka_password_file", "kafka_password_env"}},
	{Title: "Output", Flags: []string{"output", "codec", "roll_records", "roll_bytes", "roll_interval", "max_hour_files", "max_future", "s3_endpoint", "s3_region", "s3_path_style"}},
	{Title: "Seals", Flags: []string{"seal_delay", "seal_interval", "seal_from"}},
	{Title: "The process", Flags: []string{"progress_interval", "metrics_addr", "version"}},
}
