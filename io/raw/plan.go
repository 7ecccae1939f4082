package raw

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
)

// PlanOptions shapes how raw files are listed and packed into work units,
// in the spirit of Spark's maxPartitionBytes and openCostInBytes.
type PlanOptions struct {
	// TargetBytes is the most a unit holds, counting each file as its size
	// plus OpenCost. Default 64 MiB.
	TargetBytes int64
	// OpenCost is what opening one file is worth in bytes: it keeps a unit
	// of tiny files from holding thousands of them. Default 16 KiB.
	OpenCost int64
	// Parallelism is the number of units to aim for at least, so small
	// inputs still spread over workers. Default 16.
	Parallelism int
	// ListConcurrency bounds the partition listings in flight. Default 16.
	ListConcurrency int
}

func (o *PlanOptions) ensureDefaults() {
	if o.TargetBytes <= 0 {
		o.TargetBytes = 64 << 20
	}
	if o.OpenCost <= 0 {
		o.OpenCost = 16 << 10
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 16
	}
	if o.ListConcurrency <= 0 {
		o.ListConcurrency = 16
	}
}

// ListWindow lists the raw files of every kind whose arrival day lies in
// [first, last] (UTC days), one prefix per kind and day, never the whole
// root. Days with no directory are simply empty.
func ListWindow(ctx context.Context, root string, first, last time.Time, opts PlanOptions) ([]FileSplit, error) {
	opts.ensureDefaults()
	days, listings, err := ListDays(ctx, first, last, opts.ListConcurrency, func(d Partition) string { return DayPrefix(root, d.Kind, d.Day) })
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	var out []FileSplit
	for i, files := range listings {
		for _, f := range files {
			if strings.HasSuffix(f.Path, ".avro") {
				out = append(out, FileSplit{Path: f.Path, Kind: days[i].Kind, Size: f.Size, End: f.Size, Version: f.Version})
			}
		}
	}
	return out, nil
}

// ListDays lists one prefix per kind and arrival day in [first, last] (UTC
// days), at most concurrency at a time: prefix names it for the kind's day
// (a Partition with Hour -1). It returns the days, in kind then day order,
// and their listings.
func ListDays(ctx context.Context, first, last time.Time, concurrency int, prefix func(day Partition) string) ([]Partition, [][]blob.FileInfo, error) {
	var days []Partition
	for _, k := range event.Kinds {
		for d := first.UTC().Truncate(24 * time.Hour); !d.After(last); d = d.AddDate(0, 0, 1) {
			days = append(days, Partition{Kind: k, Day: d, Hour: -1})
		}
	}
	listings, err := ListEach(ctx, days, concurrency, prefix)
	return days, listings, err
}

// ListEach lists prefix(d) for each of days, concurrency at a time: the
// listings in the order of days.
func ListEach(ctx context.Context, days []Partition, concurrency int, prefix func(day Partition) string) ([][]blob.FileInfo, error) {
	listings := make([][]blob.FileInfo, len(days))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for i, d := range days {
		g.Go(func() error {
			files, err := blob.ListPrefix(ctx, prefix(d))
			if err != nil {
				return fmt.Errorf("list %s: %w", prefix(d), err)
			}
			listings[i] = files
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return listings, nil
}

// Pack groups files into work units. Files larger than the unit target are
// split into ranges that the reader aligns to OCF blocks, so one huge file
// never becomes one task. The result is deterministic for a given input.
//
// As Spark does, the effective target is
// min(TargetBytes, max(OpenCost, totalCost/Parallelism)), and splits are
// placed largest first into the current unit until it is full.
func Pack(files []FileSplit, opts PlanOptions) []WorkUnit {
	opts.ensureDefaults()
	var total int64
	for _, f := range files {
		total += f.Size + opts.OpenCost
	}
	target := min(opts.TargetBytes, max(opts.OpenCost, total/int64(opts.Parallelism)))

	var splits []FileSplit
	for _, f := range files {
		if f.Size <= target {
			splits = append(splits, f)
			continue
		}
		for off := int64(0); off < f.Size; off += target {
			s := f
			s.Start, s.End = off, min(off+target, f.Size)
			splits = append(splits, s)
		}
	}
	slices.SortStableFunc(splits, func(a, b FileSplit) int {
		if c := cmp.Compare(b.End-b.Start, a.End-a.Start); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.Start, b.Start)
	})
	var units []WorkUnit
	var cur WorkUnit
	var curCost int64
	for _, s := range splits {
		cost := s.End - s.Start + opts.OpenCost
		if len(cur.Splits) > 0 && curCost+cost > target {
			units = append(units, cur)
			cur, curCost = WorkUnit{}, 0
		}
		cur.Splits = append(cur.Splits, s)
		curCost += cost
	}
	if len(cur.Splits) > 0 {
		units = append(units, cur)
	}
	for i := range units {
		units[i].ID = i
	}
	return units
}
