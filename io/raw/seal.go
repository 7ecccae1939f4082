package raw

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
)

// Seals say which arrival hours are complete (DESIGN §3, complete input).
// A seal is one small object per kind and arrival hour,
//
//	<root>/seal/<kind>/dt=YYYY-MM-DD/hr=HH
//
// in a tree of its own, beside raw/, so that nothing that lists raw/ (the
// batch's window listing, LatestArrivalDay, a stray-file check) ever sees
// one, and so that an hour with no events at all can be sealed without
// creating a raw directory for it.
//
// A sealed hour's raw files are all there: every record received in it
// that reached Kafka in time has been written durably. The archiver seals
// an hour of a kind once every partition of the kind's topic has committed
// past it (see package archive); gen seals every hour it wrote.
// Only the object's existence counts; its content is informative and the
// same for every writer, so rewriting a seal, or two writers sealing the
// same hour, is harmless. Seals are never removed.

// SealPath is the seal object of one arrival hour of one kind.
func SealPath(root string, k event.Kind, hour time.Time) string {
	hour = hour.UTC()
	return fmt.Sprintf("%s/hr=%02d", sealDayDir(root, k, hour), hour.Hour())
}

func sealKindDir(root string, k event.Kind) string {
	return fmt.Sprintf("%s/seal/%s", strings.TrimSuffix(root, "/"), k)
}

func sealDayDir(root string, k event.Kind, day time.Time) string {
	return fmt.Sprintf("%s/dt=%s", sealKindDir(root, k), day.UTC().Format(time.DateOnly))
}

// WriteSeal seals one arrival hour of one kind (hour is truncated to the
// hour). It is idempotent. opts are blob.Create's (blob.NoSync for bulk
// writers that can regenerate their output; the archiver syncs).
func WriteSeal(ctx context.Context, root string, k event.Kind, hour time.Time, opts ...blob.CreateOption) error {
	hour = hour.UTC().Truncate(time.Hour)
	p := SealPath(root, k, hour)
	body := fmt.Sprintf("sealed %s %s\n", k, hour.Format(time.RFC3339))
	if err := blob.WriteFile(ctx, p, []byte(body), opts...); err != nil {
		return fmt.Errorf("raw: write seal %s: %w", p, err)
	}
	return nil
}

// Sealed returns the arrival hours (0..23, ascending) of the UTC day
// holding day that are not sealed for kind k: an empty result means the
// day's input of that kind is complete. It costs one listing. A day with
// no seal at all returns all 24 hours.
func Sealed(ctx context.Context, root string, k event.Kind, day time.Time) (missing []int, err error) {
	hours, err := sealedHours(ctx, root, k, day)
	if err != nil {
		return nil, err
	}
	for h := range 24 {
		if !hours[h] {
			missing = append(missing, h)
		}
	}
	return missing, nil
}

// sealedHours lists the sealed hours of one kind's day.
func sealedHours(ctx context.Context, root string, k event.Kind, day time.Time) (map[int]bool, error) {
	dir := sealDayDir(root, k, day)
	files, err := blob.ListPrefix(ctx, dir+"/")
	if err != nil {
		return nil, fmt.Errorf("raw: list seals %s: %w", dir, err)
	}
	hours := map[int]bool{}
	for _, f := range files {
		if h, ok := parseSealName(path.Base(f.Path)); ok {
			hours[h] = true
		}
	}
	return hours, nil
}

// parseSealName parses "hr=HH"; anything else is not a seal.
func parseSealName(name string) (int, bool) {
	if len(name) != 5 || !strings.HasPrefix(name, "hr=") {
		return 0, false
	}
	h := int(name[3]-'0')*10 + int(name[4]-'0')
	if name[3] < '0' || name[3] > '9' || name[4] < '0' || name[4] > '9' || h > 23 {
		return 0, false
	}
	return h, true
}

// LatestSeal returns the newest sealed arrival hour of kind k, and false
// if the kind has none. It costs two listings: the kind's seal days, then
// the newest of them. Seals only move forward, so an archiver resumes
// sealing after it.
func LatestSeal(ctx context.Context, root string, k event.Kind) (time.Time, bool, error) {
	names, err := blob.ListDirs(ctx, sealKindDir(root, k)+"/")
	if err != nil {
		return time.Time{}, false, fmt.Errorf("raw: list seals of %s: %w", k, err)
	}
	var days []time.Time
	for _, n := range names {
		n = path.Base(strings.TrimSuffix(n, "/"))
		if d, err := time.Parse("dt=2006-01-02", n); err == nil {
			days = append(days, d)
		}
	}
	slices.SortFunc(days, func(a, b time.Time) int { return b.Compare(a) })
	for _, d := range days { // newest first; a day without a seal is skipped
		hours, err := sealedHours(ctx, root, k, d)
		if err != nil {
			return time.Time{}, false, err
		}
		for h := 23; h >= 0; h-- {
			if hours[h] {
				return d.Add(time.Duration(h) * time.Hour), true, nil
			}
		}
	}
	return time.Time{}, false, nil
}
