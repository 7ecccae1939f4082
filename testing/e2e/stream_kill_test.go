package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// TestStreamKilled: cmd/stream, built, reads a backlog from committed
// offsets, committing as it goes; it is killed with SIGKILL while it
// counts. Restarted with --start=committed, it takes the killed run over
// (the offsets committed while it ran are ahead of what it stored): every
// minute and hour is then the truth less the late drops, exactly once.
func TestStreamKilled(t *testing.T) {
	bin := command(t, "stream")
	brokers, prefix := kafkatest.Cluster(t, 3)
	cfg := gen.Config{Seed: 1209, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2,
		Events: 60_000, Apps: 6, OfflineShare: 0.1, SkewShare: 0.02, InvalidShare: 0.002}
	tr := produce(t, brokers, prefix, cfg, false, 0, "")
	store := sqliteURL(t)
	st := openStore(t, store)
	args := []string{"--brokers=" + strings.Join(brokers, ","), "--topic_prefix=" + prefix, "--group=killed-" + prefix,
		"--commit_offsets", "--start=committed", "--store=" + store, "--refresh=0", "--for=10m", "--metrics_addr=127.0.0.1:0"}

	first := startProcess(t, "stream", baseEnv(t), bin, args...)
	var counted int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(3 * time.Minute)
	for counted == 0 {
		select {
		case <-first.done:
			t.Fatalf("the first run exited before counting anything: %v; output:\n%s", first.err, tail(first.output(), 40))
		case <-deadline:
			t.Fatalf("the first run counted nothing in 3 minutes; output:\n%s", tail(first.output(), 40))
		case <-tick.C:
		}
		speed, _, _ := speedState(t, st, tr)
		for k, n := range speed {
			if k.Gran == "minute" && k.Version == aggregate.AllVersions {
				counted += n
			}
		}
	}
	first.cmd.Process.Kill()
	<-first.done
	t.Logf("killed the first run with %d of %d events in its minutes", counted, tr.Valid)

	second := startProcess(t, "stream", baseEnv(t), bin, args...)
	awaitSpeedTotals(t, st, tr, second, 5*time.Minute)
	second.stop(t)
	checkSpeedAgainstTruth(t, st, tr)
	runs, err := st.StreamRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].SupersededBy != runs[1].ID || runs[0].End != nil || runs[1].End == nil {
		t.Errorf("stream runs %+v: want the killed one (no end) superseded by the second, which drained", runs)
	}
	if !strings.Contains(second.output(), "takes them over") {
		t.Errorf("the second run did not say it takes the killed run over; output:\n%s", tail(second.output(), 40))
	}
}
