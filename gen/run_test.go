package gen

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
)

// A written dataset is sealed: every hour of every kind in its arrival
// days, including hours without a file (few crashes at night), and no
// hour outside them.
func TestWriteDatasetSeals(t *testing.T) {
	root := t.TempDir()
	cfg := Config{Seed: 3, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Days: 2, Events: 2_000, Apps: 3, FilesPerHour: 2}
	sum, err := WriteDataset(cfg, root, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Seals != 2*24*len(event.Kinds) {
		t.Errorf("%d seals, want %d", sum.Seals, 2*24*len(event.Kinds))
	}
	ctx := context.Background()
	for _, k := range event.Kinds {
		for d := range 2 {
			if missing, err := raw.Sealed(ctx, root, k, cfg.Start.AddDate(0, 0, d)); err != nil || len(missing) != 0 {
				t.Errorf("%s day %d: missing seals %v, %v", k, d, missing, err)
			}
		}
		if missing, err := raw.Sealed(ctx, root, k, cfg.End()); err != nil || len(missing) != 24 {
			t.Errorf("%s: the day after the dataset has seals: missing only %v, %v", k, missing, err)
		}
		if latest, ok, err := raw.LatestSeal(ctx, root, k); err != nil || !ok || !latest.Equal(cfg.End().Add(-time.Hour)) {
			t.Errorf("%s: newest seal %v, %v, %v; want %v", k, latest, ok, err, cfg.End().Add(-time.Hour))
		}
	}
}

// The bundled sample (testing/sample) is sealed over its three days.
func TestBundledSampleSealed(t *testing.T) {
	root := "../testing/sample"
	tr, err := ReadTruth(root + "/truth.json")
	if err != nil {
		t.Fatal(err)
	}
	asOf, err := time.Parse(time.DateOnly, tr.AsOf)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range event.Kinds {
		for d := range 3 {
			day := asOf.AddDate(0, 0, -d)
			if missing, err := raw.Sealed(context.Background(), root, k, day); err != nil || !reflect.DeepEqual(missing, []int(nil)) {
				t.Errorf("%s %s: missing seals %v, %v", k, day.Format(time.DateOnly), missing, err)
			}
		}
	}
}
