// Package gen generates deterministic synthetic lumen traffic and its ground
// truth. From a seed it models a population of apps (Zipf popularity), their
// devices, version rollouts, crash and handled-exception rates (with one
// version's crash spike), a diurnal rhythm, offline devices whose events
// arrive hours to days late (a few older than the batch window), devices
// with clocks running ahead, and a trickle of invalid records. It writes the
// raw layout (DESIGN §2) with a configurable number of small files per
// arrival hour, and a ground truth computed by code of its own, independent
// of lumen's transforms, that the end-to-end tests compare against.
//
// It is test and demo tooling, not part of the product's data path.
package gen

import (
	"errors"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/io/avroio"
)

// Config describes a synthetic dataset.
type Config struct {
	Seed uint64
	// Start is the first arrival day (UTC); Days the number of arrival days.
	Start time.Time
	Days  int
	// Events is the approximate number of events to generate.
	Events int
	// Apps is the number of apps; ZipfS their popularity skew.
	Apps  int
	ZipfS float64
	// OfflineShare of devices go offline some days and upload hours to
	// days later.
	OfflineShare float64
	// SkewShare of devices have clocks running ahead by minutes to hours.
	SkewShare float64
	// WindowDays is the window of the batch run the truth is for (as_of =
	// the last arrival day). Default 30, the product's default.
	WindowDays int
	// TooOld is how many events are generated from up to a week before the
	// window that arrive in its first days: too old for the batch.
	TooOld int
	// InvalidShare of records are damaged (empty app id or device id, a
	// timestamp before 2000) and must be dead-lettered.
	InvalidShare float64
	// BadSignatures lets a damaged crash or handled exception be damaged
	// in its signature too (empty, 10 KiB, not UTF-8). Off, the damage is
	// what it was before signatures were checked, so seeds keep their
	// datasets.
	BadSignatures bool
	// FilesPerHour is the number of files per arrival hour, over all kinds
	// (200 reproduces production's small-files shape).
	FilesPerHour int
	// Codec compresses the files.
	Codec avroio.Codec
	// Junk adds three damaged files (zero bytes, a foreign schema, a
	// truncated block) whose records are not part of the truth.
	Junk bool
	// Span, if set, packs each day's activity into its first Span (events
	// spread evenly over it) instead of a diurnal rhythm over 24 hours:
	// dense traffic, e.g. millions of events in one hour for a catch-up
	// benchmark.
	Span time.Duration
	// Punctual makes every event arrive within seconds of happening: no
	// offline uploads, no network stragglers and no too-old events,
	// whatever OfflineShare and TooOld say. A stream then sees no late
	// data (clock-skewed devices are bucketed by arrival, so they stay).
	Punctual bool
}

// EnsureDefaults fills zero values.
func (c *Config) EnsureDefaults() {
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	}
	c.Start = c.Start.UTC().Truncate(24 * time.Hour)
	if c.Days == 0 {
		c.Days = 30
	}
	if c.WindowDays == 0 {
		c.WindowDays = 30
	}
	if c.Events == 0 {
		c.Events = 1_000_000
	}
	if c.Apps == 0 {
		c.Apps = 50
	}
	if c.ZipfS == 0 {
		c.ZipfS = 1.1
	}
	if c.FilesPerHour == 0 {
		c.FilesPerHour = 200
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Days < 1 {
		errs = append(errs, fmt.Errorf("days: %d, want >= 1", c.Days))
	}
	if c.Events < 1 {
		errs = append(errs, fmt.Errorf("events: %d, want >= 1", c.Events))
	}
	if c.WindowDays < 1 {
		errs = append(errs, fmt.Errorf("window_days: %d, want >= 1", c.WindowDays))
	}
	if c.Apps < 1 {
		errs = append(errs, fmt.Errorf("apps: %d, want >= 1", c.Apps))
	}
	for name, v := range map[string]float64{"offline_share": c.OfflineShare, "skew_share": c.SkewShare, "invalid_share": c.InvalidShare} {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s: %v, want 0..1", name, v))
		}
	}
	if c.Span < 0 || c.Span > 24*time.Hour {
		errs = append(errs, fmt.Errorf("span: %v, want 0..24h", c.Span))
	}
	if c.FilesPerHour < 1 {
		errs = append(errs, fmt.Errorf("files_per_hour: %d, want >= 1", c.FilesPerHour))
	}
	return errors.Join(errs...)
}

// End is the first instant after the last arrival day.
func (c *Config) End() time.Time { return c.Start.AddDate(0, 0, c.Days) }

// AsOf is the last arrival day: the as_of of the batch run the truth is for.
func (c *Config) AsOf() time.Time { return c.End().AddDate(0, 0, -1) }

// WindowStart is the first day of that run's window.
func (c *Config) WindowStart() time.Time { return c.AsOf().AddDate(0, 0, 1-c.WindowDays) }
