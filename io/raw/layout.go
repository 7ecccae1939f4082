// Package raw is lumen's raw layout (DESIGN §2): the arrival-hour
// partitions the archiver writes events into,
//
//	<root>/raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>.avro
//
// and how the batch reads them: listing a window's partitions (one
// paginated listing per kind and day), packing the many small files into
// work units of bounded size and open cost, and reading a unit's files,
// fetched concurrently, into events and dead letters.
//
// The files themselves are Avro object containers (io/avroio), reached
// through io/blob.
package raw

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
)

// The raw layout (DESIGN §2):
//
//	<root>/raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>.avro
//
// partitioned by the UTC hour in which the collector received the event.

// HourDir is the directory of one arrival hour of one kind.
func HourDir(root string, k event.Kind, hour time.Time) string {
	hour = hour.UTC()
	return fmt.Sprintf("%s/raw/%s/dt=%s/hr=%02d", strings.TrimSuffix(root, "/"), k, hour.Format(time.DateOnly), hour.Hour())
}

// DayPrefix is the listing prefix of one arrival day of one kind.
func DayPrefix(root string, k event.Kind, day time.Time) string {
	return fmt.Sprintf("%s/raw/%s/dt=%s/", strings.TrimSuffix(root, "/"), k, day.UTC().Format(time.DateOnly))
}

// ReasonBadPath is the dead-letter reason of a listed file that is not at
// raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name> (ParsePath fails): it belongs to no
// partition, and a stray file must not fail a run.
const ReasonBadPath avroio.Reason = "bad_path"

// ParsePath extracts the kind and arrival hour from a raw file path.
func ParsePath(path string) (event.Kind, time.Time, error) {
	i := strings.LastIndex(path, "/raw/")
	if i < 0 {
		return 0, time.Time{}, fmt.Errorf("raw: %s is not under raw/", path)
	}
	parts := strings.Split(path[i+len("/raw/"):], "/")
	if len(parts) != 4 || !strings.HasPrefix(parts[1], "dt=") || !strings.HasPrefix(parts[2], "hr=") {
		return 0, time.Time{}, fmt.Errorf("raw: %s is not raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>", path)
	}
	k, err := event.ParseKind(parts[0])
	if err != nil {
		return 0, time.Time{}, err
	}
	t, err := time.Parse("2006-01-02T15", parts[1][3:]+"T"+parts[2][3:])
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("raw: %s: bad partition: %w", path, err)
	}
	return k, t, nil
}

// LatestArrivalDay returns the newest dt= partition of any kind under root
// that is before the day before (a UTC day start; zero: no bound). The
// batch's default as_of passes today, whose folder is still being written.
func LatestArrivalDay(ctx context.Context, root string, before time.Time) (time.Time, error) {
	root = strings.TrimSuffix(root, "/")
	var latest time.Time
	for _, k := range event.Kinds {
		prefix := fmt.Sprintf("%s/raw/%s/", root, k)
		names, err := blob.ListDirs(ctx, prefix)
		if err != nil {
			return latest, err
		}
		for _, n := range names {
			n = strings.TrimSuffix(path.Base(strings.TrimSuffix(n, "/")), "/")
			d, err := time.Parse("dt=2006-01-02", n)
			if err == nil && d.After(latest) && (before.IsZero() || d.Before(before)) {
				latest = d
			}
		}
	}
	if latest.IsZero() {
		if !before.IsZero() {
			return latest, fmt.Errorf("raw: no raw/<kind>/dt=YYYY-MM-DD partitions before %s under %s", before.Format(time.DateOnly), root)
		}
		return latest, fmt.Errorf("raw: no raw/<kind>/dt=YYYY-MM-DD partitions under %s", root)
	}
	return latest, nil
}
