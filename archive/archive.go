package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/s3fs"
)

// Archiver consumes the event topics into the raw layout. Make one with
// New and call Run once.
type Archiver struct {
	cfg   Config
	kinds map[string]event.Kind // by topic
	dec   *event.Decoder

	// mu guards everything below. The poll loop holds it while it handles
	// a fetch; the group callbacks hold it while they roll or drop.
	mu      sync.Mutex
	cl      *kgo.Client
	ioCtx   context.Context // outlives a shutdown: the last rolls must finish
	cancel  context.CancelFunc
	err     error // the first fatal error, from the loop or a callback
	parts   map[tp]*partition
	pending map[tp]*kgo.Record // the last record of a rolled, uncommitted segment
	stats   Stats
	sealing sealer
}

type tp struct {
	topic     string
	partition int32
}

// New checks cfg and returns an Archiver for it.
func New(cfg Config) (*Archiver, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Archiver{cfg: cfg, kinds: map[string]event.Kind{}, dec: event.NewDecoder(),
		parts: map[tp]*partition{}, pending: map[tp]*kgo.Record{}, stats: Stats{DeadLetters: map[string]int64{}},
		sealing: sealer{next: map[event.Kind]time.Time{}}}
	for _, k := range event.Kinds {
		a.kinds[kafkaio.Topic(cfg.TopicPrefix, k)] = k
	}
	return a, nil
}

// Stats returns a snapshot of the counters.
func (a *Archiver) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats.clone()
	s.Partitions = len(a.parts)
	for _, p := range a.parts {
		if p.hw >= 0 && p.next >= 0 {
			s.Lag += max(0, p.hw-p.next)
		}
		if p.seg != nil {
			s.UncommittedBytes += p.seg.bytes
			s.UncommittedRecords += p.seg.records
		}
	}
	return s
}

// Run consumes until ctx is done, then rolls and commits every open
// segment and leaves the group: a graceful stop returns nil. It returns
// an error if Kafka or the output is unreachable at the start, or if the
// output fails later (IsOutputError); then nothing unwritten is committed
// and a new Run resumes from the committed offsets.
func (a *Archiver) Run(ctx context.Context) error {
	s3fs.Configure(a.cfg.S3)
	ioCtx := context.WithoutCancel(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.probeOutput(ioCtx); err != nil {
		return err
	}
	a.mu.Lock()
	a.ioCtx, a.cancel = ioCtx, cancel
	a.mu.Unlock()
	reset := kgo.NewOffset().AtStart()
	if a.cfg.Start == kafkaio.StartLatest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(a.cfg.Brokers...),
		kgo.ConsumerGroup(a.cfg.Group),
		kgo.ConsumeTopics(a.cfg.topics()...),
		kgo.ConsumeResetOffset(reset),
		// Offsets are committed by roll, after the files are durable,
		// and never while a rebalance could move a partition away.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(a.assigned),
		kgo.OnPartitionsRevoked(a.revoked),
		kgo.OnPartitionsLost(a.lost),
		kgo.SessionTimeout(a.cfg.SessionTimeout),
		// Records of aborted transactions are not part of the record.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A shorter wait for an idle fetch lets a stop (which waits for the
		// fetch in flight) finish in a second, not five.
		kgo.FetchMaxWait(time.Second),
	}
	if a.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(a.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(opts, a.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("archive: Kafka client for %v: %w", a.cfg.Brokers, err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	err = cl.Ping(pctx)
	pcancel()
	if err != nil {
		cl.Close()
		return fmt.Errorf("archive: brokers %v unreachable: %w", a.cfg.Brokers, err)
	}
	a.mu.Lock()
	a.cl = cl
	a.mu.Unlock()
	a.cfg.Logger.Info("archive: started", "group", a.cfg.Group, "topics", a.cfg.topics(), "output", a.cfg.Output,
		"codec", a.cfg.Codec.String(), "roll_records", a.cfg.RollRecords, "roll_bytes", a.cfg.RollBytes, "roll_interval", a.cfg.RollInterval)

	nextProgress := time.Now().Add(a.cfg.ProgressInterval)
	nextSeal := time.Now()
	for ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, a.pollWait())
		fetches := cl.PollRecords(pollCtx, 10_000)
		pollCancel()
		if fetches.IsClientClosed() {
			break
		}
		err := a.process(ioCtx, fetches)
		cl.AllowRebalance()
		if err != nil {
			a.fail(err)
			break
		}
		if a.cfg.ProgressInterval > 0 && time.Now().After(nextProgress) {
			a.progress("archive: progress")
			nextProgress = time.Now().Add(a.cfg.ProgressInterval)
		}
		if a.cfg.SealInterval > 0 && !time.Now().Before(nextSeal) {
			a.seal(ioCtx)
			nextSeal = time.Now().Add(a.cfg.SealInterval)
		}
	}
	return a.stop(ioCtx)
}

// stop ends a Run: after a failure it drops every open segment and commits
// only what earlier rolls made durable; otherwise it rolls and commits
// everything. Then it leaves the group.
func (a *Archiver) stop(ctx context.Context) error {
	a.mu.Lock()
	err := a.err
	for _, p := range a.parts {
		if err != nil {
			drop(p)
			continue
		}
		if rerr := a.roll(ctx, p); rerr != nil {
			err = rerr
			a.err = rerr
		}
	}
	a.commit(ctx, a.cl, nil)
	a.mu.Unlock()
	// What the last rolls committed may complete an hour.
	if err == nil && a.cfg.SealInterval > 0 {
		a.seal(ctx)
	}
	// Leaving the group revokes the partitions; their segments are empty
	// by now, so the callback has nothing left to do.
	a.cl.Close()
	a.progress("archive: stopped")
	return err
}

// fail records the first fatal error and stops the loop.
func (a *Archiver) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(err)
}

func (a *Archiver) failLocked(err error) {
	if a.err == nil {
		a.err = err
		a.cfg.Logger.Error("archive: stopping without committing the open segments", "err", err)
	}
	if a.cancel != nil {
		a.cancel()
	}
}

// probeOutput fails fast when the archive root cannot be used: a local
// root must be creatable, an S3 root listable (one request).
func (a *Archiver) probeOutput(ctx context.Context) error {
	if blob.IsLocal(a.cfg.Output) {
		if err := os.MkdirAll(a.cfg.Output, 0o755); err != nil {
			return &OutputError{Op: "create", Path: a.cfg.Output, Err: err}
		}
		return nil
	}
	probe := a.cfg.Output + "/raw/.archive-probe/"
	if _, err := blob.ListPrefix(ctx, probe); err != nil {
		return &OutputError{Op: "list", Path: probe, Err: err}
	}
	return nil
}

// pollWait is how long a poll may wait for records: until the oldest open
// segment is due to roll, between 10 ms and 1 s.
func (a *Archiver) pollWait() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	wait := time.Second
	for _, p := range a.parts {
		if p.seg != nil {
			wait = min(wait, time.Until(p.seg.opened.Add(a.cfg.RollInterval)))
		}
	}
	return max(wait, 10*time.Millisecond)
}

// process handles one poll's records, rolls the segments that are due,
// and commits what rolled.
func (a *Archiver) process(ctx context.Context, fetches kgo.Fetches) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	var err error
	fetches.EachError(func(topic string, partition int32, ferr error) {
		switch {
		case errors.Is(ferr, context.DeadlineExceeded), errors.Is(ferr, context.Canceled):
		case errors.Is(ferr, kerr.FencedInstanceID):
			// Another process runs with our instance id and has our
			// partitions (OnPartitionsLost dropped our segments): one of
			// the two is misconfigured, and it is not the newer one.
			err = fmt.Errorf("archive: fenced: another member of group %s uses instance id %q: %w", a.cfg.Group, a.cfg.InstanceID, ferr)
		default:
			a.cfg.Logger.Warn("archive: fetch", "topic", topic, "partition", partition, "err", ferr)
		}
	})
	if err != nil {
		return err
	}
	fetches.EachPartition(func(f kgo.FetchTopicPartition) {
		kind, ok := a.kinds[f.Topic]
		if err != nil || !ok {
			return
		}
		p := a.parts[tp{f.Topic, f.Partition}]
		if p == nil {
			// Not announced by OnPartitionsAssigned (kgo announces first):
			// treat it as a fresh assignment all the same.
			p = newPartition(f.Topic, f.Partition, kind)
			a.parts[tp{f.Topic, f.Partition}] = p
		}
		if f.HighWatermark >= 0 {
			p.hw = f.HighWatermark
		}
		for _, r := range f.Records {
			if err = a.handle(ctx, p, r); err != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, p := range a.parts {
		if p.seg != nil && now.Sub(p.seg.opened) >= a.cfg.RollInterval {
			if err := a.roll(ctx, p); err != nil {
				return err
			}
		}
	}
	a.commit(ctx, a.cl, nil)
	return nil
}

// progress logs one line of counters.
func (a *Archiver) progress(msg string) {
	s := a.Stats()
	var dead int64
	for _, n := range s.DeadLetters {
		dead += n
	}
	a.cfg.Logger.Info(msg, "consumed", s.Consumed, "archived", s.Archived, "files", s.Files,
		"mib", fmt.Sprintf("%.1f", float64(s.Bytes)/(1<<20)), "dead_letters", dead, "lag", s.Lag,
		"partitions", s.Partitions, "commits", s.Commits, "leftovers_removed", s.LeftoversRemoved,
		"seals", s.Seals, "archived_after_seal", s.ArchivedAfterSeal)
}
