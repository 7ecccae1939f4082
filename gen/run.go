package gen

import (
	"context"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
)

// Summary reports what WriteDataset wrote.
type Summary struct {
	Records int64
	Files   int64
	Bytes   int64
	Seals   int // arrival hours sealed, over all kinds
	Truth   *Truth
}

// WriteDataset generates cfg's dataset into the raw layout under root and
// returns its truth for a run as of cfg.AsOf() over cfg.WindowDays days (nil
// if withTruth is false: computing it costs memory on huge datasets).
func WriteDataset(cfg Config, root string, withTruth bool) (Summary, error) {
	cfg.EnsureDefaults()
	files := NewFileSink(root, cfg)
	var sink Sink = files
	var tb *TruthBuilder
	if withTruth {
		tb = NewTruthBuilder(cfg.Seed, cfg.AsOf(), cfg.WindowDays)
		sink = Tee{files, tb}
	}
	if err := Generate(cfg, sink); err != nil {
		return Summary{}, err
	}
	if err := files.Close(); err != nil {
		return Summary{}, err
	}
	if cfg.Junk {
		// Junk goes into the first arrival day the truth's run reads.
		at := cfg.Start
		if ws := cfg.WindowStart(); ws.After(at) {
			at = ws
		}
		if err := files.WriteJunk(at); err != nil {
			return Summary{}, fmt.Errorf("gen: junk: %w", err)
		}
		if tb != nil {
			tb.AddDeadLetters(JunkReasons)
		}
	}
	// Every record arrives in [Start, End), and all of them are written
	// by now: every hour of the range is complete, empty or not.
	seals, err := WriteSeals(root, cfg.Start, cfg.End())
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Records: files.Written, Files: files.Files, Bytes: files.Bytes, Seals: seals}
	if tb != nil {
		s.Truth = tb.Truth()
	}
	return s, nil
}

// WriteSeals seals every arrival hour of every kind in [first, end)
// (io/raw seals), as the archiver does once an hour is complete: for a
// dataset whose raw files are all written. It returns how many it wrote.
func WriteSeals(root string, first, end time.Time) (int, error) {
	n := 0
	for _, k := range event.Kinds {
		for h := first.UTC().Truncate(time.Hour); h.Before(end); h = h.Add(time.Hour) {
			if err := raw.WriteSeal(context.Background(), root, k, h, blob.NoSync()); err != nil {
				return n, fmt.Errorf("gen: %w", err)
			}
			n++
		}
	}
	return n, nil
}
