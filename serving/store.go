// Package serving is lumen's serving side: the Store interface both layers
// write through and queries read through, its implementations (an embedded
// SQLite file by default, Cassandra in production), and Querier, which
// merges the batch and speed layers by time range (DESIGN §3, §4).
//
// It is not for computing aggregates: rows arrive ready-made, as
// aggregate's CountRow, UserRow and LateRow.
package serving

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

// Layer selects the batch tables or the speed tables.
type Layer uint8

// The two layers of the Lambda architecture.
const (
	Batch Layer = iota + 1
	Speed
)

func (l Layer) String() string {
	switch l {
	case Batch:
		return "batch"
	case Speed:
		return "speed"
	}
	return fmt.Sprintf("layer(%d)", uint8(l))
}

// Store is where rows live. Every write is an idempotent upsert, so
// re-running a job on the same input leaves the same rows (DESIGN §2).
// Batch writes are monotone: each row carries the stamp of the run that
// wrote it (BatchStamp), and a write or a delete with an older stamp never
// replaces a row with a newer one (DESIGN §3). Implementations are safe for
// concurrent use.
type Store interface {
	// NewWriter returns a writer for bulk upserts into one layer. Each
	// worker takes its own; it must be closed.
	NewWriter(ctx context.Context, layer Layer, opts ...WriterOption) (RowWriter, error)
	// Counts returns one layer's count rows of q, ascending by bucket.
	Counts(ctx context.Context, layer Layer, q CountQuery) ([]CountPoint, error)
	// Users returns one layer's daily sketch rows of q, ascending by day.
	Users(ctx context.Context, layer Layer, q UserQuery) ([]aggregate.UserRow, error)
	// Late returns how many events of q's buckets the speed layer dropped
	// as late ("they will arrive with tonight's batch"), ascending.
	Late(ctx context.Context, q CountQuery) ([]CountPoint, error)
	// Catalog lists the (app, version) pairs, versions other than
	// AllVersions, with rows of kind in one layer in the months that
	// overlap [from, to] (month granularity keeps it an index lookup),
	// sorted. Speed entries expire with the speed rows. BatchCatalog
	// groups it by app.
	Catalog(ctx context.Context, layer Layer, kind event.Kind, from, to time.Time) ([]AppVersion, error)
	// DayTotals sums kind's batch day counts over the days [from, to] per
	// (app, version), AllVersions included, sorted by app, then version. It
	// is one scan of the count table, whatever the number of apps: the
	// batch summary ranks the apps with it, instead of a query per app.
	DayTotals(ctx context.Context, kind event.Kind, from, to time.Time) ([]AppTotal, error)
	// PruneBatch deletes the batch rows of days [first, last] (count rows
	// of every granularity, and sketch rows) whose stamp is older than
	// stamp: after a run has written its window, the rows of that window
	// it did not write (DESIGN §3). Rows with a newer stamp stay. It
	// returns how many rows it deleted, or -1 if the store cannot tell
	// (Cassandra's range tombstones).
	PruneBatch(ctx context.Context, first, last time.Time, stamp int64) (int64, error)
	// RecordRun upserts the batch_runs row of (r.Kind, r.AsOf): the state
	// of that as_of's latest attempt. CompleteAt is kept from the row
	// before while r is running or failed, set to r.Finished when r
	// succeeded, and cleared when r finished on incomplete or partial
	// input, so a failed or running attempt never lowers the watermark
	// that an earlier success set.
	RecordRun(ctx context.Context, r BatchRun) error
	// Runs returns the batch_runs rows of kind, newest as_of first.
	Runs(ctx context.Context, kind event.Kind) ([]BatchRun, error)
	// RecordStreamRun upserts the stream_runs row of r.ID. Speed reads
	// (Counts, Users, Late of the speed layer) leave out the rows of runs
	// recorded as superseded.
	RecordStreamRun(ctx context.Context, r StreamRun) error
	// StreamRuns returns every stream run, oldest first.
	StreamRuns(ctx context.Context) ([]StreamRun, error)
	// PruneStreamRuns forgets the stream runs none of whose speed rows
	// are left at now, by the store's speed-row lifetime
	// (ExpiredStreamRuns), and returns how many it forgot.
	PruneStreamRuns(ctx context.Context, now time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// WriterOptions configure a RowWriter.
type WriterOptions struct {
	// Stamp is the batch run's BatchStamp, carried by every batch row it
	// writes (batch layer only; zero is older than every run).
	Stamp int64
	// Run names the stream run writing speed rows. Each run's counts and
	// sketches are rows of their own, and reads sum the counts and merge
	// the sketches over the runs that are not superseded (StreamRun): a
	// restarted stream starts its windows empty, and must add to, not
	// replace, what the run before it counted in the same hour or day,
	// unless it reads that run's events again.
	Run string
}

// WriterOption sets a WriterOptions field.
type WriterOption func(*WriterOptions)

// WithRun tags speed rows with the stream run that writes them.
func WithRun(run string) WriterOption { return func(o *WriterOptions) { o.Run = run } }

// WithStamp stamps batch rows with a run's BatchStamp.
func WithStamp(stamp int64) WriterOption { return func(o *WriterOptions) { o.Stamp = stamp } }

// BatchStamp orders batch writes: by as_of first, then by when the run
// started (to the second), so a re-run of the same as_of replaces its rows,
// and a run of an older as_of never replaces a newer one's. It is the
// Cassandra write timestamp of batch rows: as_of's day number shifted left
// by 40 bits, plus the start in Unix seconds, which is larger than any
// microsecond clock timestamp an earlier, unstamped write carries.
func BatchStamp(asOf, started time.Time) int64 {
	days := asOf.UTC().Unix() / 86400
	return days<<40 | (started.Unix() & (1<<40 - 1))
}

// NewWriterOptions applies opts.
func NewWriterOptions(opts ...WriterOption) WriterOptions {
	var o WriterOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// MergeRunRows merges sketch rows of the same day (rows sorted by day),
// one per stream run, into one row per day: the union of the sketches and
// the sum of their events.
func MergeRunRows(rows []aggregate.UserRow) ([]aggregate.UserRow, error) {
	var out []aggregate.UserRow
	var cur *hll.Sketch
	flush := func() error {
		if cur == nil {
			return nil
		}
		last := &out[len(out)-1]
		b, err := cur.MarshalBinary()
		if err != nil {
			return err
		}
		last.Sketch, last.Estimate, cur = b, int64(cur.Estimate()), nil
		return nil
	}
	for _, r := range rows {
		if len(out) > 0 && out[len(out)-1].Day == r.Day {
			last := &out[len(out)-1]
			if cur == nil {
				cur = new(hll.Sketch)
				if err := cur.UnmarshalBinary(last.Sketch); err != nil {
					return nil, fmt.Errorf("serving: sketch of %s: %w", last.DayTime().Format(time.DateOnly), err)
				}
			}
			s := new(hll.Sketch)
			if err := s.UnmarshalBinary(r.Sketch); err != nil {
				return nil, fmt.Errorf("serving: sketch of %s: %w", r.DayTime().Format(time.DateOnly), err)
			}
			if err := cur.Merge(s); err != nil {
				return nil, fmt.Errorf("serving: merging sketches of %s: %w", r.DayTime().Format(time.DateOnly), err)
			}
			last.Events += r.Events
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// RowWriter upserts rows. Writes may be buffered until Flush or Close.
//
// In the speed layer, rows come from running totals that a runner may
// deliver out of order, so a count row only replaces one (of the same run)
// with a smaller count, and a sketch row one built from fewer events: the
// stored value is always the newest total.
type RowWriter interface {
	WriteCounts(ctx context.Context, rows []aggregate.CountRow) error
	WriteUsers(ctx context.Context, rows []aggregate.UserRow) error
	// WriteLate records events the speed layer dropped as late (speed
	// layer only). A bucket's late total is the sum over row sources.
	WriteLate(ctx context.Context, rows []aggregate.LateRow) error
	// DeleteCounts and DeleteUsers delete batch rows by their keys (kind,
	// app, version, granularity and bucket; kind, app, version and day),
	// whatever their values (batch layer only). Deletes are monotone as
	// writes are: a row whose stamp is as new as the writer's, or newer,
	// stays (DESIGN §3). An incremental batch run deletes what its window
	// no longer holds this way, row by row.
	DeleteCounts(ctx context.Context, rows []aggregate.CountRow) error
	DeleteUsers(ctx context.Context, rows []aggregate.UserRow) error
	// Flush makes every write so far durable in the store.
	Flush(ctx context.Context) error
	// Close flushes and releases the writer.
	Close(ctx context.Context) error
}

// StatsReporter is implemented by RowWriters that count what they did
// (rows, retries, time throttled); the pipelines add these to Beam metrics
// when a writer closes.
type StatsReporter interface {
	Stats() map[string]int64
}

// CountQuery selects count rows: one kind, app and version (AllVersions for
// every version), one granularity, buckets in [From, To].
type CountQuery struct {
	Kind     event.Kind
	AppID    string
	Version  string
	Gran     aggregate.Granularity
	From, To time.Time
}

// CountPoint is one bucket's count, and the layer it was read from.
type CountPoint struct {
	Bucket time.Time
	Count  int64
	Layer  Layer
}

// AppVersion is one entry of a Catalog.
type AppVersion struct {
	AppID, Version string
}

// AppTotal is an (app, version)'s count over a range of days.
type AppTotal struct {
	AppVersion
	Count int64
}

// UserQuery selects daily sketch rows: days in [From, To] (day starts).
type UserQuery struct {
	Kind     event.Kind
	AppID    string
	Version  string
	From, To time.Time
}

// RunStatus is the state of a batch run.
type RunStatus string

// Run states. Only a run that succeeded on complete input moves the
// watermark (DESIGN §3).
const (
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	// RunIncomplete: the run wrote its rows, but its input for as_of was
	// not sealed (Note says what was missing).
	RunIncomplete RunStatus = "incomplete"
	// RunPartial: a run as of a day that had not ended
	// (--allow_partial_day).
	RunPartial RunStatus = "partial"
	RunFailed  RunStatus = "failed"
)

// BatchRun is one batch_runs row: the latest attempt of one kind of one
// as_of.
type BatchRun struct {
	Kind        event.Kind
	AsOf        time.Time // day
	WindowStart time.Time // day
	Started     time.Time
	Finished    time.Time // zero while running
	Status      RunStatus
	Note        string // why a run is incomplete or failed
	Counters    map[string]int64
	// CompleteAt is when an attempt of this as_of last succeeded on
	// complete input; zero if none has, or if a later attempt finished on
	// incomplete input. Stores keep it across running and failed attempts.
	CompleteAt time.Time
}

// Period returns the partition period of a bucket (DESIGN §2): a day for
// minutes, a month for hours and days. It bounds partition sizes.
func Period(g aggregate.Granularity, bucket time.Time) string {
	bucket = bucket.UTC()
	if g == aggregate.Minute {
		return bucket.Format(time.DateOnly)
	}
	return bucket.Format("2006-01")
}

// Periods lists the periods of granularity g that intersect [from, to].
func Periods(g aggregate.Granularity, from, to time.Time) []string {
	var out []string
	from, to = from.UTC(), to.UTC()
	if g == aggregate.Minute {
		for d := from.Truncate(24 * time.Hour); !d.After(to); d = d.AddDate(0, 0, 1) {
			out = append(out, Period(g, d))
		}
		return out
	}
	for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(to); m = m.AddDate(0, 1, 0) {
		out = append(out, Period(g, m))
	}
	return out
}

// Opener opens a store from its URL (the part after the scheme included).
type Opener func(ctx context.Context, url string) (Store, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// Register makes a store scheme available to Open. Stores register
// themselves in init, each in a package of its own (sqlitestore,
// cassandrastore), so that a program links only the drivers it imports.
func Register(scheme string, o Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[scheme] = o
}

// Open opens a store by URL: "sqlite:PATH" or "cassandra://hosts/keyspace?…".
func Open(ctx context.Context, url string) (Store, error) {
	scheme, _, ok := strings.Cut(url, ":")
	if !ok {
		return nil, fmt.Errorf("serving: store %q has no scheme (want sqlite:PATH or cassandra://…)", Redact(url))
	}
	openersMu.Lock()
	o := openers[scheme]
	openersMu.Unlock()
	if o == nil {
		var known []string
		for k := range openers {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("serving: unknown store scheme %q (known: %s)", scheme, strings.Join(known, ", "))
	}
	return o(ctx, url)
}

// Redact removes credentials from a store URL for logs and errors.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		rest = "REDACTED@" + rest[at+1:]
	}
	// Query parameters that carry secrets.
	if i := strings.Index(rest, "?"); i >= 0 {
		base, q := rest[:i], rest[i+1:]
		parts := strings.Split(q, "&")
		for j, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if strings.Contains(strings.ToLower(k), "password") || strings.Contains(strings.ToLower(k), "secret") || strings.Contains(strings.ToLower(k), "token") {
				parts[j] = k + "=REDACTED"
			}
		}
		rest = base + "?" + strings.Join(parts, "&")
	}
	return scheme + "://" + rest
}
