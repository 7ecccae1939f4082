package pipelines

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/winstate"
)

func init() {
	beam.RegisterCoder(reflect.TypeOf(partPartial{}), encodePartPartial, decodePartPartial)
	register.DoFn7x1[context.Context, batchUnit, func(string, deadletter.Record), func(string, partPartial), func(aggregate.AppKey, aggregate.Agg), func(KindStats), func(winstate.Part), error](&readPartitionsFn{})
	register.Emitter2[string, partPartial]()
}

// partPartial is part (or all) of the partial aggregates of one partition
// read from raw, on its way to be grouped by partition.
type partPartial struct {
	Rollup       rollup.Rollup
	Rejected     int64    // rollups found unusable, and replaced by raw
	RawFiles     int64    // raw files (or splits) this part read
	RawBytes     int64    // and their bytes
	ReadFailures int64    // files that could not be read (raw.ReadStats.ReadFailures)
	Unversioned  bool     // the listing gives no versions (batchUnit.Unversioned)
	Stale        []string // rollup files the partition's new one replaces
	Only         []int64  // batchUnit.Only
}

// partMeta is partPartial but its rollup, for the coder.
type partMeta struct {
	Rejected           int64
	RawFiles, RawBytes int64
	ReadFailures       int64
	Unversioned        bool
	Stale              []string
	Only               []int64
}

// The coder: a length-prefixed JSON header, then the rollup in its file
// form (aggregates in aggregate's binary form).
func encodePartPartial(p partPartial) ([]byte, error) {
	meta, err := json.Marshal(partMeta{p.Rejected, p.RawFiles, p.RawBytes, p.ReadFailures, p.Unversioned, p.Stale, p.Only})
	if err != nil {
		return nil, err
	}
	r, err := rollup.Marshal(p.Rollup)
	if err != nil {
		return nil, err
	}
	b := binary.AppendUvarint(nil, uint64(len(meta)))
	return append(append(b, meta...), r...), nil
}

func decodePartPartial(b []byte) (partPartial, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return partPartial{}, errors.New("pipelines: partPartial coder: bad header")
	}
	var m partMeta
	if err := json.Unmarshal(b[k:k+int(n)], &m); err != nil {
		return partPartial{}, err
	}
	r, err := rollup.Unmarshal(b[k+int(n):])
	if err != nil {
		return partPartial{}, err
	}
	return partPartial{Rollup: r, Rejected: m.Rejected, RawFiles: m.RawFiles, RawBytes: m.RawBytes, ReadFailures: m.ReadFailures, Unversioned: m.Unversioned,
		Stale: m.Stale, Only: m.Only}, nil
}

// forever is the window a partition's partials are kept in: all of time.
// Runs cut them to their own windows later.
var forever = aggregate.DayWindow{First: time.UnixMilli(math.MinInt64 / 2).UTC(), Last: time.UnixMilli(math.MaxInt64 / 2).UTC()}

// readPartitionsFn reads work units: the hot path. A raw unit's events
// are decoded, validated and pre-aggregated (aggregate.Partials), so only
// per-(kind, app) partials of its partition leave it, never single
// events, to be grouped by partition (cutPartitionFn). A rollup unit's
// rollups are read and checked; each is a whole partition, so it is cut
// to the window here (cutWhole) and its aggregates go straight to the
// merge, with no shuffle of the rollup. A rollup that cannot be used is
// replaced by its partition's raw files, with a warning and a counter.
type readPartitionsFn struct {
	fileSetup
	Precision   uint8
	Opts        raw.ReadOptions
	MaxCells    int
	First, Last time.Time // the run's window
	Stamp       int64     // the run's (BatchConfig.Stamp), keying its Progress
}

func (f *readPartitionsFn) ProcessElement(ctx context.Context, u batchUnit,
	emitDead func(string, deadletter.Record), emitPart func(string, partPartial),
	emitAgg func(aggregate.AppKey, aggregate.Agg), emitStats func(KindStats), emitStatePart func(winstate.Part)) error {
	if len(u.BadPaths) > 0 {
		deadBadPaths(u.BadPaths, f.Opts.Pipeline, emitDead, emitStats)
		return nil
	}
	if len(u.Rollups) == 0 {
		p, err := raw.ParsePartition(u.Partition)
		if err != nil {
			return fmt.Errorf("pipelines: work unit %d: %w", u.ID, err)
		}
		return f.readRaw(ctx, p, u.Splits, u.Manifest, u.Stale, 0, u.Unversioned, u.Only, emitDead, emitPart)
	}
	// Rollups are small and many: fetch them concurrently, then use them
	// in order.
	type got struct {
		r   rollup.Rollup
		n   int64
		err error
	}
	results := make([]got, len(u.Rollups))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, f.Opts.Concurrency))
	for i, t := range u.Rollups {
		g.Go(func() error {
			p, err := raw.ParsePartition(t.Partition)
			if err != nil {
				return err
			}
			r, n, err := rollup.Read(gctx, t.Path)
			if err == nil {
				err = r.Check(p, t.Manifest, f.Precision, f.Opts.NowMs, f.Opts.MaxFuture)
			}
			if err != nil && !errors.Is(err, rollup.ErrInvalid) {
				return fmt.Errorf("pipelines: rollup %s: %w", t.Path, err) // the filesystem: retry the bundle
			}
			results[i] = got{r, n, err}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	window := aggregate.DayWindow{First: f.First, Last: f.Last}
	for i, t := range u.Rollups {
		if res := results[i]; res.err == nil {
			beam.NewCounter("lumen.batch", "rollup_bytes_read").Inc(ctx, res.n)
			cutWhole(res.r, KindStats{PartitionsFromRollups: 1, RollupBytes: res.n}, window, t.Only, emitAgg, emitStats, emitStatePart)
			continue
		}
		slog.Warn("batch: a rollup cannot be used; reading its partition's raw files instead",
			"partition", t.Partition, "rollup", t.Path, "reason", results[i].err)
		beam.NewCounter("lumen.batch", "rollups_rejected").Inc(ctx, 1)
		p, _ := raw.ParsePartition(t.Partition)
		// The new rollup goes to the same path (the manifest is the same).
		if err := f.readRaw(ctx, p, t.Files, t.Manifest, t.Stale, 1, false, t.Only, emitDead, emitPart); err != nil {
			return err
		}
	}
	return nil
}

// deadBadPaths makes the listed files outside the raw layout dead letters
// of their kind's listing (keyed "<kind>_listing"), counted by reason.
func deadBadPaths(bad []badPath, pipeline string, emitDead func(string, deadletter.Record), emitStats func(KindStats)) {
	byKind := map[event.Kind]int64{}
	for _, b := range bad {
		byKind[b.Kind]++
		emitDead(b.Kind.String()+"_listing", deadletter.Record{Pipeline: pipeline, Source: b.Path, Offset: -1, Index: -1,
			Reason: string(raw.ReasonBadPath), Detail: b.Detail})
	}
	for k, n := range byKind {
		emitStats(KindStats{Kind: k, DeadLetters: map[string]int64{string(raw.ReasonBadPath): n}})
	}
}

// readRaw reads a partition's raw files (or splits) into partials.
func (f *readPartitionsFn) readRaw(ctx context.Context, p raw.Partition, splits []raw.FileSplit, m rollup.Manifest, stale []string,
	rejected int64, unversioned bool, only []int64, emitDead func(string, deadletter.Record), emitPart func(string, partPartial)) error {
	sink := &partitionSink{key: strings.ReplaceAll(p.String(), "/", "_"), emitDead: emitDead,
		partials: aggregate.NewPartials(forever, aggregate.Hour, f.Precision), max: f.maxCells()}
	sink.emit = func(files, bytes, failures int64, times rollup.TimeBounds) {
		c := rollup.Counters{Files: files, DeadLetters: sink.dead}
		c.Bytes = bytes
		aggs := map[aggregate.AppKey]aggregate.Agg{}
		stats := sink.partials.Drain(func(k aggregate.AppKey, a aggregate.Agg) { aggs[k] = a })
		c.Events, c.ClockSkew = stats[p.Kind].Events, stats[p.Kind].ClockSkew
		emitPart(p.String(), partPartial{Rollup: rollup.Rollup{Partition: p, Precision: f.Precision, Manifest: m, Counters: c, Times: times, Aggs: aggs},
			Rejected: rejected, RawFiles: files, RawBytes: bytes, ReadFailures: failures, Unversioned: unversioned, Stale: stale, Only: only})
		sink.dead, rejected = nil, 0
	}
	rs, err := raw.ReadUnit(ctx, raw.WorkUnit{Splits: splits}, f.Opts, sink)
	if err != nil {
		return fmt.Errorf("pipelines: partition %v: %w", p, err)
	}
	var files, bytes int64
	for _, sp := range splits {
		bytes += sp.End - sp.Start
		if sp.Start == 0 {
			files++
		}
	}
	sink.emit(files, bytes, rs.ReadFailures, rollup.TimeBounds{Latest: rs.Latest, FutureFrom: rs.FutureFrom})
	c := "lumen.batch"
	beam.NewCounter(c, "files_read").Inc(ctx, rs.Files)
	beam.NewCounter(c, "bytes_read").Inc(ctx, rs.Bytes)
	beam.NewCounter(c, "records_read").Inc(ctx, rs.Records)
	pr := progressOf(f.Stamp)
	pr.filesRead.Add(rs.Files)
	pr.eventsRead.Add(rs.Records)
	return nil
}

func (f *readPartitionsFn) maxCells() int {
	if f.MaxCells > 0 {
		return f.MaxCells
	}
	return 2_000_000
}

// partitionSink feeds a partition's events into Partials, hands it on
// early past max cells, and keys its dead letters by partition, so each
// partition's dead letters land in one file.
type partitionSink struct {
	key      string
	partials *aggregate.Partials
	max      int
	emit     func(files, bytes, failures int64, times rollup.TimeBounds)
	emitDead func(string, deadletter.Record)
	dead     map[string]int64
}

func (s *partitionSink) Events(evs []event.Event) {
	for i := range evs {
		s.partials.Add(&evs[i])
	}
	if s.partials.Cells() > s.max {
		s.emit(0, 0, 0, rollup.TimeBounds{}) // the files, bytes, failures and time bounds go with the last part
	}
}

func (s *partitionSink) DeadLetter(r deadletter.Record) {
	if s.dead == nil {
		s.dead = map[string]int64{}
	}
	s.dead[r.Reason]++
	s.emitDead(s.key, r)
}
