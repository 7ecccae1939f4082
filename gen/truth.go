package gen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/lumenhq/lumen/event"
)

// Truth is what a batch run for AsOf over WindowDays must produce, computed
// from the generated records by this package's own code: plain time
// arithmetic and exact sets, sharing nothing with lumen's transforms.
type Truth struct {
	Seed       uint64   `json:"seed"`
	AsOf       string   `json:"as_of"`
	WindowDays int      `json:"window_days"`
	Counters   Counters `json:"counters"`
	Counts     []Count  `json:"counts"`
	Users      []Users  `json:"users"`
	Ranges     []Users  `json:"ranges"`
}

// Counters are the run-level numbers.
type Counters struct {
	Read        int64            `json:"read"`    // records in the window's partitions
	Valid       int64            `json:"valid"`   // records passing validation
	Counted     int64            `json:"counted"` // valid and inside the window
	ClockSkew   int64            `json:"clock_skew"`
	TooOld      int64            `json:"too_old"`
	AfterWindow int64            `json:"after_window"`
	Invalid     map[string]int64 `json:"invalid"`      // by reason
	DeadLetters map[string]int64 `json:"dead_letters"` // every expected dead letter, by reason
}

// Count is an exact count of one bucket; Version "" is all versions.
type Count struct {
	Kind    string    `json:"kind"`
	App     string    `json:"app"`
	Version string    `json:"version"`
	Gran    string    `json:"granularity"`
	Bucket  time.Time `json:"bucket"`
	Count   int64     `json:"count"`
}

// Users is an exact number of distinct devices over [From, To] (days).
type Users struct {
	Kind     string `json:"kind"`
	App      string `json:"app"`
	Version  string `json:"version"`
	From     string `json:"from"`
	To       string `json:"to"`
	Distinct int64  `json:"distinct"`
}

// TruthBuilder is a Sink that computes the Truth of a run.
type TruthBuilder struct {
	first, last time.Time // window days
	seed        uint64
	c           Counters
	counts      map[countKey]int64
	days        map[userKey]map[string]struct{}
}

type countKey struct {
	kind    event.Kind
	app     string
	version string
	hour    bool
	bucket  int64
}

type userKey struct {
	kind    event.Kind
	app     string
	version string
	day     int64 // unix day number
}

// NewTruthBuilder computes the truth of a run for asOf over windowDays.
func NewTruthBuilder(seed uint64, asOf time.Time, windowDays int) *TruthBuilder {
	last := time.Date(asOf.Year(), asOf.Month(), asOf.Day(), 0, 0, 0, 0, time.UTC)
	return &TruthBuilder{
		seed: seed, first: last.AddDate(0, 0, 1-windowDays), last: last,
		c:      Counters{Invalid: map[string]int64{}, DeadLetters: map[string]int64{}},
		counts: map[countKey]int64{}, days: map[userKey]map[string]struct{}{},
	}
}

func unixDay(ms int64) int64 {
	d := ms / 86_400_000
	if ms < 0 && ms%86_400_000 != 0 {
		d--
	}
	return d
}

// Record accounts for one record.
func (t *TruthBuilder) Record(r *Record) error {
	arrivalDay := time.UnixMilli(r.Arrival).UTC()
	if arrivalDay.Before(t.first) || !arrivalDay.Before(t.last.AddDate(0, 0, 1)) {
		return nil // the run does not read this partition
	}
	t.c.Read++
	if r.Invalid != "" {
		t.c.Invalid[string(r.Invalid)]++
		t.c.DeadLetters[string(r.Invalid)]++
		return nil
	}
	t.c.Valid++
	e := &r.Event
	when := e.EventTime
	if e.EventTime > e.ReceivedTime {
		t.c.ClockSkew++
		when = e.ReceivedTime
	}
	at := time.UnixMilli(when).UTC()
	switch {
	case at.Before(t.first):
		t.c.TooOld++
		return nil
	case !at.Before(t.last.AddDate(0, 0, 1)):
		t.c.AfterWindow++
		return nil
	}
	t.c.Counted++
	hour := at.Truncate(time.Hour).UnixMilli()
	day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, v := range []string{e.AppVersion, ""} {
		t.counts[countKey{e.Kind, e.AppID, v, true, hour}]++
		t.counts[countKey{e.Kind, e.AppID, v, false, day}]++
		uk := userKey{e.Kind, e.AppID, v, unixDay(day)}
		set := t.days[uk]
		if set == nil {
			set = map[string]struct{}{}
			t.days[uk] = set
		}
		set[string(e.DeviceID)] = struct{}{}
	}
	return nil
}

// DayDone does nothing: truth needs no flushing.
func (t *TruthBuilder) DayDone(time.Time) error { return nil }

// AddDeadLetters records dead letters expected from outside the generated
// records (WriteJunk's files).
func (t *TruthBuilder) AddDeadLetters(m map[string]int64) {
	for r, n := range m {
		t.c.DeadLetters[r] += n
	}
}

// Truth assembles the result, sorted. Ranges hold, per key, the last 7
// days and the whole window (WAU and MAU as of the run).
func (t *TruthBuilder) Truth() *Truth {
	tr := &Truth{Seed: t.seed, AsOf: t.last.Format(time.DateOnly), WindowDays: int(t.last.Sub(t.first).Hours()/24) + 1, Counters: t.c}
	for k, n := range t.counts {
		g := "day"
		if k.hour {
			g = "hour"
		}
		tr.Counts = append(tr.Counts, Count{Kind: k.kind.String(), App: k.app, Version: k.version, Gran: g, Bucket: time.UnixMilli(k.bucket).UTC(), Count: n})
	}
	slices.SortFunc(tr.Counts, func(a, b Count) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.App, b.App), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Gran, b.Gran), a.Bucket.Compare(b.Bucket))
	})
	type rangeKey struct {
		kind         event.Kind
		app, version string
	}
	lastDay := unixDay(t.last.UnixMilli())
	ranges := []struct{ from, to int64 }{{lastDay - 6, lastDay}, {unixDay(t.first.UnixMilli()), lastDay}}
	unions := make([]map[rangeKey]map[string]struct{}, len(ranges))
	for i := range unions {
		unions[i] = map[rangeKey]map[string]struct{}{}
	}
	for k, set := range t.days {
		day := time.UnixMilli(k.day * 86_400_000).UTC().Format(time.DateOnly)
		tr.Users = append(tr.Users, Users{Kind: k.kind.String(), App: k.app, Version: k.version, From: day, To: day, Distinct: int64(len(set))})
		for i, r := range ranges {
			if k.day < r.from || k.day > r.to {
				continue
			}
			rk := rangeKey{k.kind, k.app, k.version}
			u := unions[i][rk]
			if u == nil {
				u = map[string]struct{}{}
				unions[i][rk] = u
			}
			for d := range set {
				u[d] = struct{}{}
			}
		}
	}
	for i, r := range ranges {
		from := time.UnixMilli(r.from * 86_400_000).UTC().Format(time.DateOnly)
		to := time.UnixMilli(r.to * 86_400_000).UTC().Format(time.DateOnly)
		for k, u := range unions[i] {
			tr.Ranges = append(tr.Ranges, Users{Kind: k.kind.String(), App: k.app, Version: k.version, From: from, To: to, Distinct: int64(len(u))})
		}
	}
	byUsers := func(a, b Users) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.App, b.App), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	}
	slices.SortFunc(tr.Users, byUsers)
	slices.SortFunc(tr.Ranges, byUsers)
	return tr
}

// WriteFile writes t as JSON.
func (t *Truth) WriteFile(path string) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadTruth reads a truth file.
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("gen: truth %s: %w", path, err)
	}
	return &t, nil
}

// Tee is a Sink that feeds several sinks.
type Tee []Sink

// Record feeds every sink.
func (t Tee) Record(r *Record) error {
	for _, s := range t {
		if err := s.Record(r); err != nil {
			return err
		}
	}
	return nil
}

// DayDone feeds every sink.
func (t Tee) DayDone(d time.Time) error {
	for _, s := range t {
		if err := s.DayDone(d); err != nil {
			return err
		}
	}
	return nil
}
