package aggregate

import (
	"fmt"
	"time"
)

// Granularity is a bucket size. Buckets are UTC and aligned to the epoch:
// a day is [00:00, 24:00).
type Granularity uint8

// The granularities lumen computes. Minutes exist in the speed layer only.
const (
	Minute Granularity = iota + 1
	Hour
	Day
)

var granNames = [...]string{Minute: "minute", Hour: "hour", Day: "day"}

func (g Granularity) String() string {
	if g >= Minute && g <= Day {
		return granNames[g]
	}
	return fmt.Sprintf("granularity(%d)", uint8(g))
}

// ParseGranularity parses "minute", "hour" or "day".
func ParseGranularity(s string) (Granularity, error) {
	for g := Minute; g <= Day; g++ {
		if granNames[g] == s {
			return g, nil
		}
	}
	return 0, fmt.Errorf("aggregate: unknown granularity %q (want minute, hour or day)", s)
}

func (g Granularity) valid() bool { return g >= Minute && g <= Day }

// Millis is the bucket length in milliseconds.
func (g Granularity) Millis() int64 {
	switch g {
	case Minute:
		return 60_000
	case Hour:
		return 3_600_000
	case Day:
		return 86_400_000
	}
	panic(fmt.Sprintf("aggregate: Millis of %v", g))
}

// Truncate returns the start of the bucket holding ms (milliseconds since the
// epoch). It floors, so it is right for times before 1970 too.
func (g Granularity) Truncate(ms int64) int64 { return WindowStart(ms, g.Millis()) }

// DayWindow is the inclusive range of UTC days a batch run covers:
// [as_of − window_days + 1, as_of].
type DayWindow struct {
	First, Last time.Time // both midnight UTC
}

// NewDayWindow returns the window of a batch run for asOf (any time on the
// day) and a window of days days.
func NewDayWindow(asOf time.Time, days int) DayWindow {
	last := asOf.UTC().Truncate(24 * time.Hour)
	return DayWindow{First: last.AddDate(0, 0, -(days - 1)), Last: last}
}

// Days is the number of days in the window.
func (w DayWindow) Days() int { return int(w.Last.Sub(w.First)/(24*time.Hour)) + 1 }

// Placement says where a bucketed event falls relative to a DayWindow.
type Placement uint8

// Placements. Events before the window are dropped and counted as too_old;
// events after it (a bucket time later than the run's as_of, which a sane
// collector clock never produces) are dropped and counted as after_window.
const (
	InWindow Placement = iota
	TooOld
	AfterWindow
)

// Place classifies a bucket time.
func (w DayWindow) Place(ms int64) Placement {
	switch {
	case ms < w.First.UnixMilli():
		return TooOld
	case ms >= w.Last.AddDate(0, 0, 1).UnixMilli():
		return AfterWindow
	}
	return InWindow
}

func (w DayWindow) String() string {
	return w.First.Format(time.DateOnly) + ".." + w.Last.Format(time.DateOnly)
}

// TruncateTime is Truncate for a time.Time, in UTC.
func (g Granularity) TruncateTime(t time.Time) time.Time {
	return time.UnixMilli(g.Truncate(t.UnixMilli())).UTC()
}
