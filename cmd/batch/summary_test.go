package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
)

// The summary says when rollups were not reused, and why.
func TestSummaryRollupsNotReused(t *testing.T) {
	ctx := context.Background()
	st, err := serving.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	asOf := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, k := range event.Kinds {
		if err := st.RecordRun(ctx, serving.BatchRun{Kind: k, AsOf: asOf, WindowStart: asOf.AddDate(0, 0, -29),
			Started: asOf, Finished: asOf, Status: serving.RunSucceeded,
			Counters: map[string]int64{"read.partitions_from_raw": 2, "read.partitions_unversioned": 2, "read.rollups_skipped": 1}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := pipelines.BatchConfig{Input: "gs://bucket/root", AsOf: asOf, Store: "sqlite:x"}
	cfg.EnsureDefaults()
	var out bytes.Buffer
	if err := printSummary(ctx, &out, st, cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rollups  not reused: gs:// lists no object versions (6 partitions read from raw, and not rolled up)",
		"rollups  not written for 3 partitions with files that could not be read",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary does not say %q:\n%s", want, out.String())
		}
	}
}
