package launch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/testing/s3test"
)

// TestRetainBatch: a run as of D deletes the rollups of arrival days
// before its window and the dead-letter days past their retention, on a
// local disk and on S3, and nothing else: not the window's rollups, not
// raw files, not other entries. A second call deletes nothing more.
func TestRetainBatch(t *testing.T) {
	asOf := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	first := asOf.AddDate(0, 0, -29) // the 30-day window's first day
	for _, where := range []string{"local", "s3"} {
		t.Run(where, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			if where == "s3" {
				e := s3test.Fake(t)
				s3fs.Configure(e.Options)
				root = e.Root("lake")
			}
			put := func(p string) {
				if err := blob.WriteFile(ctx, root+"/"+p, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			day := func(d time.Time) string { return "dt=" + d.Format(time.DateOnly) }
			var kept, gone []string
			for _, k := range event.Kinds {
				for _, d := range []time.Time{first.AddDate(0, 0, -3), first.AddDate(0, 0, -1)} {
					gone = append(gone, fmt.Sprintf("rollup/%s/%s/abc.avro", k, day(d)), fmt.Sprintf("rollup/%s/%s/hr=04/def.avro", k, day(d)))
				}
				kept = append(kept, fmt.Sprintf("rollup/%s/%s/abc.avro", k, day(first)), fmt.Sprintf("rollup/%s/%s/abc.avro", k, day(asOf)),
					fmt.Sprintf("raw/%s/%s/hr=01/part-0.avro", k, day(first.AddDate(0, 0, -5))), fmt.Sprintf("rollup/%s/notaday/x", k))
			}
			gone = append(gone, "deadletter/batch/"+day(asOf.AddDate(0, 0, -91))+"/dl.avro")
			kept = append(kept, "deadletter/batch/"+day(asOf.AddDate(0, 0, -90))+"/dl.avro", "deadletter/archive/"+day(asOf.AddDate(0, 0, -200))+"/dl.avro")
			for _, p := range append(slices.Clone(kept), gone...) {
				put(p)
			}
			cfg := pipelines.BatchConfig{Input: root, AsOf: asOf}
			r, err := RetainBatch(ctx, cfg, 90*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			left, err := blob.ListPrefix(ctx, root+"/")
			if err != nil {
				t.Fatal(err)
			}
			var have []string
			for _, f := range left {
				have = append(have, strings.TrimPrefix(strings.TrimPrefix(f.Path, root), "/"))
			}
			slices.Sort(have)
			slices.Sort(kept)
			if !slices.Equal(have, kept) {
				t.Errorf("after retention\n have %v\n want %v", have, kept)
			}
			if r.RollupFiles != len(gone)-1 || r.DeadLetterFiles != 1 {
				t.Errorf("retention reports %+v, want %d rollup files and 1 dead-letter file", r, len(gone)-1)
			}
			if r2, err := RetainBatch(ctx, cfg, 90*24*time.Hour); err != nil || r2 != (Retained{}) {
				t.Errorf("a second retention: %+v, %v; want nothing deleted", r2, err)
			}
			if r3, err := RetainBatch(ctx, cfg, 0); err != nil || r3 != (Retained{}) {
				t.Errorf("retention 0 (keep all): %+v, %v", r3, err)
			}
		})
	}
}
