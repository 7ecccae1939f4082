package raw

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// Grain is how finely arrival partitions are grouped for reuse (rollups):
// an arrival hour, as the files are laid out, or a whole arrival day.
type Grain uint8

// The grains.
const (
	GrainHour Grain = iota + 1
	GrainDay
)

func (g Grain) String() string {
	switch g {
	case GrainHour:
		return "hour"
	case GrainDay:
		return "day"
	}
	return fmt.Sprintf("grain(%d)", uint8(g))
}

// ParseGrain parses "hour" or "day".
func ParseGrain(s string) (Grain, error) {
	switch s {
	case "hour":
		return GrainHour, nil
	case "day":
		return GrainDay, nil
	}
	return 0, fmt.Errorf("raw: grain %q, want hour or day", s)
}

// Partition is one arrival partition of one kind: an hour (Hour 0..23) or,
// at GrainDay, a whole day (Hour -1).
type Partition struct {
	Kind event.Kind
	Day  time.Time // midnight UTC
	Hour int
}

// Dir is the partition's path under a layout ("raw" or "rollup") of root:
// <root>/<layout>/<kind>/dt=YYYY-MM-DD[/hr=HH].
func (p Partition) Dir(root, layout string) string {
	return strings.TrimSuffix(root, "/") + "/" + layout + "/" + p.String()
}

func (p Partition) String() string {
	s := fmt.Sprintf("%s/dt=%s", p.Kind, p.Day.Format(time.DateOnly))
	if p.Hour >= 0 {
		s += fmt.Sprintf("/hr=%02d", p.Hour)
	}
	return s
}

// Compare orders partitions by kind, day and hour.
func (p Partition) Compare(o Partition) int {
	return cmp.Or(cmp.Compare(p.Kind, o.Kind), p.Day.Compare(o.Day), cmp.Compare(p.Hour, o.Hour))
}

// PartitionOf returns the partition at grain g holding a raw file.
func PartitionOf(path string, g Grain) (Partition, error) {
	k, t, err := ParsePath(path)
	if err != nil {
		return Partition{}, err
	}
	p := Partition{Kind: k, Day: t.Truncate(24 * time.Hour), Hour: t.Hour()}
	if g == GrainDay {
		p.Hour = -1
	}
	return p, nil
}

// ParsePartition parses Partition.String's form.
func ParsePartition(s string) (Partition, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[1], "dt=") {
		return Partition{}, fmt.Errorf("raw: partition %q", s)
	}
	k, err := event.ParseKind(parts[0])
	if err != nil {
		return Partition{}, fmt.Errorf("raw: partition %q: %w", s, err)
	}
	day, err := time.Parse(time.DateOnly, parts[1][3:])
	if err != nil {
		return Partition{}, fmt.Errorf("raw: partition %q: %w", s, err)
	}
	p := Partition{Kind: k, Day: day, Hour: -1}
	if len(parts) == 3 {
		if _, err := fmt.Sscanf(parts[2], "hr=%02d", &p.Hour); err != nil || p.Hour < 0 || p.Hour > 23 {
			return Partition{}, fmt.Errorf("raw: partition %q: bad hour", s)
		}
	}
	return p, nil
}
