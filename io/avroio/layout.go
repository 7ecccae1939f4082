package avroio

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// The raw layout (DESIGN §2):
//
//	<root>/raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>.avro
//
// partitioned by the UTC hour in which the collector received the event.

// RawHourDir is the directory of one arrival hour of one kind.
func RawHourDir(root string, k event.Kind, hour time.Time) string {
	hour = hour.UTC()
	return fmt.Sprintf("%s/raw/%s/dt=%s/hr=%02d", strings.TrimSuffix(root, "/"), k, hour.Format(time.DateOnly), hour.Hour())
}

// RawDayPrefix is the listing prefix of one arrival day of one kind.
func RawDayPrefix(root string, k event.Kind, day time.Time) string {
	return fmt.Sprintf("%s/raw/%s/dt=%s/", strings.TrimSuffix(root, "/"), k, day.UTC().Format(time.DateOnly))
}

// ParseRawPath extracts the kind and arrival hour from a raw file path.
func ParseRawPath(path string) (event.Kind, time.Time, error) {
	i := strings.LastIndex(path, "/raw/")
	if i < 0 {
		return 0, time.Time{}, fmt.Errorf("avroio: %s is not under raw/", path)
	}
	parts := strings.Split(path[i+len("/raw/"):], "/")
	if len(parts) != 4 || !strings.HasPrefix(parts[1], "dt=") || !strings.HasPrefix(parts[2], "hr=") {
		return 0, time.Time{}, fmt.Errorf("avroio: %s is not raw/<kind>/dt=YYYY-MM-DD/hr=HH/<name>", path)
	}
	k, err := event.ParseKind(parts[0])
	if err != nil {
		return 0, time.Time{}, err
	}
	t, err := time.Parse("2006-01-02T15", parts[1][3:]+"T"+parts[2][3:])
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("avroio: %s: bad partition: %w", path, err)
	}
	return k, t, nil
}

// DirLister is implemented by filesystems that can list the immediate
// subdirectories of a prefix (S3: ListObjectsV2 with a delimiter).
type DirLister interface {
	ListDirs(ctx context.Context, prefix string) ([]string, error)
}

// LatestArrivalDay returns the newest dt= partition of any kind under root.
func LatestArrivalDay(ctx context.Context, root string) (time.Time, error) {
	root = strings.TrimSuffix(root, "/")
	var latest time.Time
	for _, k := range event.Kinds {
		prefix := fmt.Sprintf("%s/raw/%s/", root, k)
		var names []string
		if isLocal(root) {
			entries, err := os.ReadDir(prefix)
			if err != nil && !os.IsNotExist(err) {
				return latest, err
			}
			for _, e := range entries {
				if e.IsDir() {
					names = append(names, e.Name())
				}
			}
		} else {
			fs, err := fileSystem(ctx, root)
			if err != nil {
				return latest, err
			}
			dl, ok := fs.(DirLister)
			if !ok {
				return latest, fmt.Errorf("avroio: cannot list partitions of %s", root)
			}
			if names, err = dl.ListDirs(ctx, prefix); err != nil {
				return latest, err
			}
		}
		for _, n := range names {
			n = strings.TrimSuffix(path.Base(strings.TrimSuffix(n, "/")), "/")
			if d, err := time.Parse("dt=2006-01-02", n); err == nil && d.After(latest) {
				latest = d
			}
		}
	}
	if latest.IsZero() {
		return latest, fmt.Errorf("avroio: no raw/<kind>/dt=YYYY-MM-DD partitions under %s", root)
	}
	return latest, nil
}
