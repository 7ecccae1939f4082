package gen

import "fmt"

// Summary reports what WriteDataset wrote.
type Summary struct {
	Records int64
	Files   int64
	Bytes   int64
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
	s := Summary{Records: files.Written, Files: files.Files, Bytes: files.Bytes}
	if tb != nil {
		s.Truth = tb.Truth()
	}
	return s, nil
}
