package pipelines

import (
	"errors"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/serving"
)

// BatchConfig configures one batch run (DESIGN §3).
type BatchConfig struct {
	// Input is the root of the raw layout: a local directory or any Beam
	// filesystem path (s3://bucket/root).
	Input string
	// AsOf is the run's day; the window is [AsOf−WindowDays+1, AsOf].
	AsOf time.Time
	// WindowDays is the window length. Default 30.
	WindowDays int
	// Store is the store URL rows are written to (serving.Open).
	Store string
	// DeadLetterRoot is where dead letters go, under deadletter/batch/.
	// Default: Input.
	DeadLetterRoot string
	// Precision of the distinct-device sketches. Default 14.
	Precision uint8
	// Started is when the run started, for batch_runs and the rows' stamp
	// (serving.BatchStamp), and the run's processing clock: a day that
	// has not ended by then cannot be complete. Default: now.
	Started time.Time
	// AllowPartialDay lets a run be as of a day that has not ended (UTC).
	// Such a run records "partial" and never moves the watermark.
	AllowPartialDay bool
	// AllowIncomplete records a run whose input for AsOf is not sealed by
	// the archiver as succeeded, moving the watermark (the operator's
	// override); without it the run records "incomplete".
	AllowIncomplete bool
	// Now is the run's processing clock, fixed once by the launcher so that
	// every worker agrees: an event or received time more than MaxFuture
	// after it is a future_time dead letter (DESIGN §3, time bounds).
	// Default: Started.
	Now time.Time
	// MaxFuture is how far ahead of Now an event may be. Default
	// event.DefaultMaxFuture (1 h).
	MaxFuture time.Duration
	// MaxBundleCells bounds the map-side aggregate a reader holds before it
	// emits early (about 100 bytes a cell). Default 2,000,000.
	MaxBundleCells int
	// S3 configures s3:// access on every worker (endpoint, region,
	// addressing; credentials come from the AWS chain). Zero: environment.
	S3 s3fs.Options
	// Plan and Read tune the small-file reader.
	Plan raw.PlanOptions
	Read raw.ReadOptions

	// RollupRoot is where partitions' rollups are kept, under rollup/.
	// Default: Input.
	RollupRoot string
	// Grain is the arrival partition a rollup covers. Default a day, by
	// measurement: see the README's "Incremental runs: rollups" for the
	// figures (cmd/bench incremental).
	Grain raw.Grain
	// Full reads every partition from raw, ignoring rollups (and writes
	// them afresh).
	Full bool
	// NoRollups neither reads nor writes rollups: every run reads raw.
	NoRollups bool
	// Verify is what a run that extends a window state lists: "window"
	// (the default: every arrival day, so that a changed old partition is
	// found) or "new" (only the arrival days after the state's; a change to
	// an older day goes unseen until a run with "window" or --full).
	Verify string
}

// The values of BatchConfig.Verify.
const (
	VerifyWindow = "window"
	VerifyNew    = "new"
)

// Partial reports whether AsOf had not ended when the run started.
func (c *BatchConfig) Partial() bool {
	return !c.AsOf.Before(c.Started.UTC().Truncate(24 * time.Hour))
}

// EnsureDefaults fills zero values.
func (c *BatchConfig) EnsureDefaults() {
	if c.WindowDays == 0 {
		c.WindowDays = 30
	}
	if c.DeadLetterRoot == "" {
		c.DeadLetterRoot = c.Input
	}
	if c.RollupRoot == "" {
		c.RollupRoot = c.Input
	}
	if c.Grain == 0 {
		c.Grain = raw.GrainDay
	}
	if c.Verify == "" {
		c.Verify = VerifyWindow
	}
	if c.Precision == 0 {
		c.Precision = hll.DefaultPrecision
	}
	if c.Started.IsZero() {
		c.Started = time.Now().UTC()
	}
	if c.Now.IsZero() {
		c.Now = c.Started
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = event.DefaultMaxFuture
	}
	c.AsOf = c.AsOf.UTC().Truncate(24 * time.Hour)
	c.Read.Pipeline = "batch"
	c.Read.NowMs, c.Read.MaxFuture = c.Now.UnixMilli(), c.MaxFuture
}

// Validate reports every problem with the configuration at once.
func (c *BatchConfig) Validate() error {
	var errs []error
	if c.Input == "" {
		errs = append(errs, errors.New("input: required"))
	}
	if c.AsOf.IsZero() {
		errs = append(errs, errors.New("as_of: required"))
	}
	if c.Verify != VerifyWindow && c.Verify != VerifyNew {
		errs = append(errs, fmt.Errorf("verify: %q, want %q or %q", c.Verify, VerifyWindow, VerifyNew))
	}
	if c.WindowDays < 1 || c.WindowDays > 366 {
		errs = append(errs, fmt.Errorf("window_days: %d, want 1..366", c.WindowDays))
	}
	if c.Store == "" {
		errs = append(errs, errors.New("store: required"))
	}
	if c.Grain != raw.GrainHour && c.Grain != raw.GrainDay {
		errs = append(errs, fmt.Errorf("grain: %v, want hour or day", c.Grain))
	}
	if today := c.Started.UTC().Truncate(24 * time.Hour); !c.AsOf.IsZero() && c.Partial() && !c.AllowPartialDay {
		errs = append(errs, fmt.Errorf("as_of: %s has not ended (today is %s UTC), so it cannot be complete; pass --allow_partial_day to run it anyway, without moving the watermark",
			c.AsOf.Format(time.DateOnly), today.Format(time.DateOnly)))
	}
	if c.MaxFuture < 0 {
		errs = append(errs, fmt.Errorf("max_future: %v, want > 0", c.MaxFuture))
	}
	if c.Precision < hll.MinPrecision || c.Precision > hll.MaxPrecision {
		errs = append(errs, fmt.Errorf("precision: %d, want %d..%d", c.Precision, hll.MinPrecision, hll.MaxPrecision))
	}
	return errors.Join(errs...)
}

// Stamp is the run's serving.BatchStamp, of AsOf and Started: the rows
// carry it, and it keys the run's Progress. Set AsOf and Started first
// (a zero Started gets the time BuildBatch is called).
func (c BatchConfig) Stamp() int64 { return serving.BatchStamp(c.AsOf, c.Started) }
