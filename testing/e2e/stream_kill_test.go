package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
	"github.com/lumenhq/lumen/testing/servicetest"
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
	counted := awaitCounting(t, st, tr, first)
	first.cmd.Process.Kill()
	<-first.done
	t.Logf("killed the first run with %d of %d events in its minutes", counted, tr.Valid)
	restartExact(t, bin, args, st, tr)
}

// restartExact restarts cmd/stream with args after a first run stopped
// without a drain, and checks that the second run takes the first over
// and, once it has drained, the speed layer is exact.
func restartExact(t *testing.T, bin string, args []string, st serving.Store, tr *gen.StreamTruth) {
	t.Helper()

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

// awaitCounting waits until the speed layer has stored some of tr's
// events, and returns how many are in its all-version minutes.
func awaitCounting(t *testing.T, st serving.Store, tr *gen.StreamTruth, p *process) int64 {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case <-p.done:
			t.Fatalf("the first run exited before counting anything: %v; output:\n%s", p.err, tail(p.output(), 40))
		case <-deadline:
			t.Fatalf("the first run counted nothing in 3 minutes; output:\n%s", tail(p.output(), 40))
		case <-tick.C:
		}
		speed, _, _ := speedState(t, st, tr)
		var counted int64
		for k, n := range speed {
			if k.Gran == "minute" && k.Version == aggregate.AllVersions {
				counted += n
			}
		}
		if counted > 0 {
			return counted
		}
	}
}

// TestStreamCancelledJob: cmd/stream submits the speed layer to a job
// service (prism in a process of its own) and reads a backlog from
// committed offsets, committing as it goes; while it counts, with panes
// pending, the job is cancelled in the runner, as an operator would in
// its UI. The launcher reports it and exits. Restarted in process with
// --start=committed, the stream takes the cancelled run over (it has no
// recorded end): every minute and hour is the truth less the late drops,
// nothing lost and nothing twice.
func TestStreamCancelledJob(t *testing.T) {
	js := jobService{name: "prism", runner: "universal", endpoint: servicetest.Addr(t, "LUMEN_TEST_JOB_ENDPOINT")}
	bin := command(t, "stream")
	brokers, prefix := kafkatest.Cluster(t, 3)
	cfg := gen.Config{Seed: 1212, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2,
		Events: 60_000, Apps: 6, OfflineShare: 0.1, SkewShare: 0.02, InvalidShare: 0.002}
	tr := produce(t, brokers, prefix, cfg, false, 0, "")
	store := sqliteURL(t)
	st := openStore(t, store)
	args := []string{"--brokers=" + strings.Join(brokers, ","), "--topic_prefix=" + prefix, "--group=cancelled-" + prefix,
		"--commit_offsets", "--start=committed", "--store=" + store, "--refresh=0", "--for=10m", "--metrics_addr=127.0.0.1:0"}

	job := jobName("stream-cancelled")
	first := startProcess(t, "launcher", baseEnv(t), bin, append(js.submit(job, "LOOPBACK", "", ""), args...)...)
	counted := awaitCounting(t, st, tr, first)
	n, err := launch.CancelJobs(context.Background(), js.endpoint, job)
	if err != nil || n != 1 {
		t.Fatalf("cancelling %s on %s: %d jobs, %v", job, js.endpoint, n, err)
	}
	err = first.wait(t, 2*time.Minute)
	t.Logf("cancelled %s in the runner with %d of %d events in its minutes; the launcher exited: %v", job, counted, tr.Valid, err)
	if err == nil {
		t.Errorf("the launcher exited 0 after its job was cancelled in the runner; output:\n%s", tail(first.output(), 20))
	}
	if counted >= tr.Valid {
		t.Fatalf("the first run had stored every event before the cancel: nothing was pending")
	}
	restartExact(t, bin, args, st, tr)
}
