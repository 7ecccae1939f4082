package transforms

import (
	"fmt"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/transforms/hll"
)

// AppKey is the key partials are shuffled by: one kind of one app. Keying by
// app rather than by (version, bucket) keeps the number of shuffled elements
// small (DESIGN §7a); versions and buckets live inside the Agg.
type AppKey struct {
	Kind  event.Kind
	AppID string
}

func (k AppKey) String() string { return k.Kind.String() + "/" + k.AppID }

// AllVersions is the app_version of rows that count every version.
const AllVersions = ""

// Cell is one count bucket of one version within an Agg.
type Cell struct {
	Version string
	Bucket  int64 // bucket start, ms since the epoch, at the Agg's granularity
}

// DayCell is one day of one version within an Agg.
type DayCell struct {
	Version string
	Day     int64 // day start, ms since the epoch
}

// Agg is the accumulator both layers share: for one AppKey, event counts per
// (version, bucket) at one granularity and, if Precision > 0, a distinct
// device sketch per (version, day). All-version rows and coarser
// granularities are derived when rows are extracted, so a partial holds
// each event once.
//
// Agg has reference semantics (its maps are shared by copies).
type Agg struct {
	Gran      Granularity
	Precision uint8
	Counts    map[Cell]int64
	Users     map[DayCell]*hll.Sketch
}

// NewAgg returns an empty Agg counting at gran, sketching at precision
// (0 = no sketches).
func NewAgg(gran Granularity, precision uint8) Agg {
	a := Agg{Gran: gran, Precision: precision, Counts: map[Cell]int64{}}
	if precision > 0 {
		a.Users = map[DayCell]*hll.Sketch{}
	}
	return a
}

// IsZero reports whether a was never initialised (a fresh accumulator).
func (a Agg) IsZero() bool { return a.Counts == nil }

// Add counts e in the bucket holding ms, which the caller got from
// BucketTime, and adds its device to that day's sketch.
func (a Agg) Add(e *event.Event, ms int64) {
	a.Counts[Cell{e.AppVersion, a.Gran.Truncate(ms)}]++
	if a.Precision > 0 {
		c := DayCell{e.AppVersion, Day.Truncate(ms)}
		s := a.Users[c]
		if s == nil {
			s = hll.MustNew(a.Precision)
			a.Users[c] = s
		}
		s.AddHash(hll.Hash(e.DeviceID))
	}
}

// Merge adds b into a and returns a. It takes ownership of b's sketches:
// b must not be used afterwards. An uninitialised a becomes b.
func (a Agg) Merge(b Agg) (Agg, error) { return a.merge(b, true) }

// MergeCopy adds b into a and returns a, leaving b untouched and unshared:
// for inputs the caller does not own, such as a combine's input elements,
// which a fused runner may hand to several consumers at once.
func (a Agg) MergeCopy(b Agg) (Agg, error) { return a.merge(b, false) }

func (a Agg) merge(b Agg, own bool) (Agg, error) {
	if b.IsZero() {
		return a, nil
	}
	if a.IsZero() {
		if own {
			return b, nil
		}
		return b.clone(), nil
	}
	if a.Gran != b.Gran || a.Precision != b.Precision {
		return a, fmt.Errorf("transforms: merging Agg(%v, p=%d) into Agg(%v, p=%d)", b.Gran, b.Precision, a.Gran, a.Precision)
	}
	for c, n := range b.Counts {
		a.Counts[c] += n
	}
	for c, s := range b.Users {
		if mine := a.Users[c]; mine != nil {
			if err := mine.Merge(s); err != nil {
				return a, fmt.Errorf("transforms: merge sketch %v: %w", c, err)
			}
		} else if own {
			a.Users[c] = s
		} else {
			a.Users[c] = s.Clone()
		}
	}
	return a, nil
}

// Total is the number of events counted in a.
func (a Agg) Total() int64 {
	var n int64
	for _, c := range a.Counts {
		n += c
	}
	return n
}
