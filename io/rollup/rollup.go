// Package rollup holds the batch layer's reusable partial aggregates
// (DESIGN §2): one file per raw arrival partition,
//
//	<root>/rollup/<kind>/dt=YYYY-MM-DD[/hr=HH]/<manifest hash>.avro
//
// with the partition's partial aggregates kept whole (every valid event,
// bucketed by event time, so any later run cuts them to its own window),
// its counters, and the manifest of the raw objects it covers (key, size,
// version). A run that finds a partition's raw listing unchanged takes the
// partition from its rollup instead of reading the raw files again.
//
// A rollup is never trusted without proof: it is used only if its name
// (the manifest's hash, with Format and Semantics) matches the listing,
// and its content decodes, carries this Format, this Semantics (the
// version of validation, bucketing and encoding) and the run's precision,
// holds exactly the listed manifest, and its time bounds hold at the run's
// clock (the run would dead-letter as future_time exactly the events it
// did). Anything else is ErrInvalid, and the caller reads the raw files
// instead.
package rollup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/raw"
)

// Format is the version of the rollup file format. A rollup of another
// format is never used (it is recomputed, and rewritten in this one).
const Format = 2

// ErrInvalid classifies every reason a rollup cannot be used.
var ErrInvalid = errors.New("rollup: invalid")

// Object is one raw object a rollup covers.
type Object struct {
	Key     string
	Size    int64
	Version string
}

// Manifest is the raw objects of a partition, sorted by key.
type Manifest []Object

// NewManifest returns the manifest of a partition's listed files (splits
// of one file count once).
func NewManifest(files []raw.FileSplit) Manifest {
	m := make(Manifest, 0, len(files))
	seen := map[string]bool{}
	for _, f := range files {
		if !seen[f.Path] {
			seen[f.Path] = true
			m = append(m, Object{Key: f.Path, Size: f.Size, Version: f.Version})
		}
	}
	slices.SortFunc(m, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return m
}

// Hash identifies the rollup of the manifest: the manifest, this Format
// and this Semantics. A rollup's file is named by it, so the listing of
// rollups already tells which partitions are unchanged, and a rollup of
// other code is never even read.
func (m Manifest) Hash() string { return m.hash(Semantics) }

func (m Manifest) hash(semantics int) string {
	h := sha256.New()
	fmt.Fprintf(h, "lumen rollup format %d semantics %d\n", Format, semantics)
	for _, o := range m {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", o.Key, o.Size, o.Version)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Counters are a partition's run counters, kept whole like its aggregates.
type Counters struct {
	Files, Bytes      int64 // the partition's raw files, and their bytes
	Events, ClockSkew int64 // valid events, and those bucketed by received_time
	DeadLetters       map[string]int64
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Files += o.Files
	c.Bytes += o.Bytes
	c.Events += o.Events
	c.ClockSkew += o.ClockSkew
	for r, n := range o.DeadLetters {
		if c.DeadLetters == nil {
			c.DeadLetters = map[string]int64{}
		}
		c.DeadLetters[r] += n
	}
}

// TimeBounds are what a partition's content depends on through the
// processing clock: the time bound (event.CheckFuture) counts an event
// only while its received time is at most
// now + max_future. A run at another clock reads the same events from
// the raw files exactly when the bounds hold at it (Holds).
type TimeBounds struct {
	// Latest is the latest time (ms) of an event the rollup counts; 0 if none.
	Latest int64
	// FutureFrom is the earliest time (ms) of an event it dead-lettered as
	// future_time; 0 if none.
	FutureFrom int64
}

// Add widens b to cover o too.
func (b *TimeBounds) Add(o TimeBounds) {
	b.Latest = max(b.Latest, o.Latest)
	if o.FutureFrom != 0 && (b.FutureFrom == 0 || o.FutureFrom < b.FutureFrom) {
		b.FutureFrom = o.FutureFrom
	}
}

// Holds reports whether a run with clock nowMs and bound maxFuture would
// count every event the rollup counts and dead-letter every one it
// dead-lettered as future_time.
func (b TimeBounds) Holds(nowMs int64, maxFuture time.Duration) bool {
	limit := nowMs + maxFuture.Milliseconds()
	return b.Latest <= limit && (b.FutureFrom == 0 || b.FutureFrom > limit)
}

// Rollup is one partition's partial aggregates.
type Rollup struct {
	Partition raw.Partition
	Precision uint8
	Manifest  Manifest
	Counters  Counters
	Times     TimeBounds
	// Aggs count per version and hour of event time, and sketch per
	// version and event day, every valid event of the partition.
	Aggs map[aggregate.AppKey]aggregate.Agg
}

// Merge adds o (another part of the same partition) into r, adopting o's
// aggregates, with the combine both layers share.
func (r *Rollup) Merge(o Rollup) error {
	if r.Partition != o.Partition || r.Precision != o.Precision {
		return fmt.Errorf("rollup: merging %v (p=%d) into %v (p=%d)", o.Partition, o.Precision, r.Partition, r.Precision)
	}
	if len(r.Manifest) == 0 {
		r.Manifest = o.Manifest
	}
	r.Counters.Add(o.Counters)
	r.Times.Add(o.Times)
	if r.Aggs == nil {
		r.Aggs = map[aggregate.AppKey]aggregate.Agg{}
	}
	fn := aggregate.CombineFn{Gran: aggregate.Hour, Precision: r.Precision}
	for k, a := range o.Aggs {
		merged, err := fn.MergeAccumulators(r.Aggs[k], a)
		if err != nil {
			return fmt.Errorf("rollup: %v: %w", k, err)
		}
		r.Aggs[k] = merged
	}
	return nil
}

// Check proves that r can stand for partition p as listed with manifest m
// at precision, in a run whose clock is nowMs with bound maxFuture: the
// content must carry exactly them, and its time bounds must hold. The
// error wraps ErrInvalid.
func (r Rollup) Check(p raw.Partition, m Manifest, precision uint8, nowMs int64, maxFuture time.Duration) error {
	switch {
	case r.Partition != p:
		return fmt.Errorf("%w: it is of %v, not %v", ErrInvalid, r.Partition, p)
	case r.Precision != precision:
		return fmt.Errorf("%w: precision %d, the run's is %d", ErrInvalid, r.Precision, precision)
	case !slices.Equal(r.Manifest, m):
		return fmt.Errorf("%w: its manifest (%d objects) is not the listing's (%d)", ErrInvalid, len(r.Manifest), len(m))
	case !r.Times.Holds(nowMs, maxFuture):
		return fmt.Errorf("%w: built with other events beyond max_future (latest counted %d, earliest future_time %d; the run's bound is %d)",
			ErrInvalid, r.Times.Latest, r.Times.FutureFrom, nowMs+maxFuture.Milliseconds())
	}
	for k, a := range r.Aggs {
		if a.Gran != aggregate.Hour || a.Precision != precision {
			return fmt.Errorf("%w: %v counts per %v at p=%d", ErrInvalid, k, a.Gran, a.Precision)
		}
	}
	return nil
}

// Path is where the rollup of partition p with manifest m lives under root.
func Path(root string, p raw.Partition, m Manifest) string {
	return p.Dir(root, "rollup") + "/" + m.Hash() + ".avro"
}

// readAllLimited reads at most limit bytes: a rollup is a few hundred KiB,
// and a garbled length must not turn into a huge allocation.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, limit)
	}
	return b.Bytes(), nil
}
