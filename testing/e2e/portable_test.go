package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/launch"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
	"github.com/lumenhq/lumen/testing/s3test"
	"github.com/lumenhq/lumen/testing/servicetest"
)

// jobService is a Beam job service the commands submit to (DESIGN §7):
// prism in a process of its own (testing/services/up prism), and Flink's
// job server on the day Maven Central serves it (up flink).
type jobService struct {
	name, runner, endpoint string
}

// forEachJobService runs f against every job service, each in a subtest
// that skips, saying why, when its variable is unset.
func forEachJobService(t *testing.T, f func(t *testing.T, js jobService)) {
	for _, c := range []struct{ name, env, runner string }{
		{"prism", "LUMEN_TEST_JOB_ENDPOINT", "universal"},
		{"flink", "LUMEN_TEST_FLINK", "flink"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f(t, jobService{name: c.name, runner: c.runner, endpoint: servicetest.Addr(t, c.env)})
		})
	}
}

// submit returns the flags that submit a job named name to js with the
// SDK workers set up as env says (LOOPBACK, EXTERNAL=addr, PROCESS=command).
func (js jobService) submit(name, envType, envConfig, workerBinary string) []string {
	args := []string{"--runner=" + js.runner, "--endpoint=" + js.endpoint, "--job_name=" + name,
		"--environment_type=" + envType}
	if envConfig != "" {
		args = append(args, "--environment_config="+envConfig)
	}
	if workerBinary != "" {
		args = append(args, "--worker_binary="+workerBinary)
	}
	return args
}

// secret returns a random string that must not travel with any job.
func secret(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "lumen-secret-" + hex.EncodeToString(b)
}

// jobName is a job name of this run's own.
func jobName(what string) string {
	return fmt.Sprintf("lumen-e2e-%s-%d", what, time.Now().UnixNano())
}

// submitJob runs a command that submits a job and waits for it to exit
// (at most 10 minutes: a job whose workers never start stays RUNNING on
// prism for ever, so on a timeout the job is cancelled too).
func submitJob(t *testing.T, js jobService, job string, env []string, bin string, args ...string) string {
	t.Helper()
	start := time.Now()
	p := startProcess(t, "launcher", env, bin, args...)
	select {
	case <-p.done:
	case <-time.After(10 * time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		launch.CancelJobs(ctx, js.endpoint, job)
		t.Fatalf("%s did not finish within 10 minutes (cancelled); output:\n%s", job, tail(p.output(), 60))
	}
	if p.err != nil {
		t.Fatalf("%s: %v; output:\n%s", job, p.err, tail(p.output(), 60))
	}
	t.Logf("%s ran in %v", job, time.Since(start).Round(100*time.Millisecond))
	return p.output()
}

// portableBatchConfig is the portable runs' dataset: 30 days of events
// with late, too-old, clock-skewed and invalid records and damaged files.
var portableBatchConfig = gen.Config{
	Seed: 1207, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Days: 30, WindowDays: 30,
	Events: 120_000, Apps: 20, OfflineShare: 0.05, SkewShare: 0.01, TooOld: 100, InvalidShare: 0.001,
	FilesPerHour: 4, Junk: true,
}

// TestPortableBatch: cmd/batch, built, submits the batch to a job service
// in a process of its own (prism; Flink when it can be had), with its SDK
// workers in the launcher (LOOPBACK) and in processes of their own: a
// worker pool that the same binary serves (EXTERNAL, as a Flink task
// manager's sidecar), and workers the runner starts (PROCESS). Each run's
// store equals the generator's truth exactly.
//
// The EXTERNAL run is the production shape: input on S3 (moto), rows into
// Cassandra. The launcher has no AWS credentials and no way to the input
// but the job, so the listing happens inside the job; the pool is started
// with nothing but its credentials (no S3 endpoint, store, or flags), so
// the S3 settings and the store reach the workers with the job's DoFns;
// and neither the Cassandra password, given to the launcher in --store,
// nor the pool's AWS secret key is in what the job service received.
func TestPortableBatch(t *testing.T) {
	forEachJobService(t, func(t *testing.T, js jobService) {
		bin := command(t, "batch")
		root, tr := dataset(t, "portable", portableBatchConfig)
		asOf := "--as_of=" + tr.AsOf
		t.Run("LOOPBACK", func(t *testing.T) {
			store := sqliteURL(t)
			job := jobName("batch-loopback")
			args := append(js.submit(job, "LOOPBACK", "", ""), "--input="+root, asOf, "--store="+store,
				"--deadletter_root="+t.TempDir(), "--quiet")
			submitJob(t, js, job, baseEnv(t), bin, args...)
			checkAgainstTruth(t, openStore(t, store), tr)
			checkJobDone(t, js, job)
		})
		t.Run("EXTERNAL", func(t *testing.T) {
			portableBatchExternal(t, js, bin)
		})
		t.Run("PROCESS", func(t *testing.T) {
			store := sqliteURL(t)
			job := jobName("batch-process")
			worker := processWorker(t, bin, baseEnv(t))
			envConfig, _ := json.Marshal(map[string]string{"command": worker})
			args := append(js.submit(job, "PROCESS", string(envConfig), bin), "--input="+root, asOf, "--store="+store,
				"--deadletter_root="+t.TempDir(), "--quiet")
			submitJob(t, js, job, baseEnv(t), bin, args...)
			checkAgainstTruth(t, openStore(t, store), tr)
			checkJobDone(t, js, job)
		})
	})
}

func portableBatchExternal(t *testing.T, js jobService, bin string) {
	addr := servicetest.Addr(t, "LUMEN_TEST_CASSANDRA")
	servicetest.Use(t, "cassandra")
	s3 := s3test.Moto(t)
	root := s3.Root("lake")
	s3fs.Configure(s3.Options)
	// One file an hour: moto takes a few milliseconds a request.
	cfg := portableBatchConfig
	cfg.FilesPerHour = 1
	start := time.Now()
	sum, err := gen.WriteDataset(cfg, root, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dataset on moto: %d objects in %v", sum.Files, time.Since(start).Round(100*time.Millisecond))
	tr := sum.Truth

	casPassword, awsSecret := secret(t), secret(t)
	keyspace := fmt.Sprintf("lumen_portable_%d", os.Getpid())
	const settings = "consistency=ONE&adaptive=true&rate=50000&workers=2"
	pool := startPool(t, bin, baseEnv(t,
		"AWS_ACCESS_KEY_ID=lumen-pool", "AWS_SECRET_ACCESS_KEY="+awsSecret, "AWS_REGION=us-east-1",
		"LUMEN_CASSANDRA_USERNAME=lumen", "LUMEN_CASSANDRA_PASSWORD="+casPassword))
	job := jobName("batch-external")
	args := append(js.submit(job, "EXTERNAL", pool, bin), "--input="+root, "--as_of="+tr.AsOf,
		"--store=cassandra://lumen:"+casPassword+"@"+addr+"/"+keyspace+"?"+settings,
		"--s3_endpoint="+s3.URL, "--quiet")
	submitJob(t, js, job, baseEnv(t), bin, args...)

	checkAgainstTruth(t, openStore(t, "cassandra://"+addr+"/"+keyspace), tr)
	sj := checkJobDone(t, js, job)
	checkCarries(t, job, marshal(t, sj.info.GetPipelineOptions()), sj.pipeline,
		[]string{keyspace, "workers=2", strings.TrimPrefix(s3.URL, "http://"), s3.Bucket + "/lake"},
		map[string]string{"the Cassandra password given in --store": casPassword, "the worker pool's AWS secret key": awsSecret})
}

// checkJobDone checks that the job service ran the job to its end.
func checkJobDone(t *testing.T, js jobService, job string) submittedJob {
	t.Helper()
	sj := findJob(t, js.endpoint, job)
	if s := sj.info.GetState(); s != jobpb.JobState_DONE {
		t.Errorf("%s is %v on %s, want DONE", job, s, js.name)
	}
	return sj
}

// portableStreamConfig is the stream runs' traffic, weeks old: offline
// devices report hours late, some clocks run ahead, a few records are
// damaged.
var portableStreamConfig = gen.Config{Seed: 1208, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2,
	Events: 30_000, Apps: 6, OfflineShare: 0.1, SkewShare: 0.02, InvalidShare: 0.002}

// TestPortableStream: cmd/stream, built, submits the speed layer to a job
// service in a process of its own and reads real Kafka from the earliest
// offsets, with its workers in the launcher (LOOPBACK) and in a worker
// pool the same binary serves (EXTERNAL). Once the store holds every
// event, counted or late (at most three minutes), the launcher is
// interrupted: the job is cancelled on the job service, and every minute
// and hour equals the truth less what was dropped as late, exactly.
//
// prism runs an environment's workers in one process, so here every
// partition of the Read is in the EXTERNAL pool's process; partitions
// moving between processes are io/kafkaio's TestRegistryAcrossWorkers.
func TestPortableStream(t *testing.T) {
	servicetest.Addr(t, "LUMEN_TEST_KAFKA")
	forEachJobService(t, func(t *testing.T, js jobService) {
		bin := command(t, "stream")
		for _, mode := range []string{"LOOPBACK", "EXTERNAL"} {
			t.Run(mode, func(t *testing.T) {
				brokers, prefix := kafkatest.Cluster(t, 3)
				tr := produce(t, brokers, prefix, portableStreamConfig, false, 0, "")
				casPassword := secret(t)
				store := sqliteURL(t)
				job := jobName("stream-" + strings.ToLower(mode))
				var submit []string
				if mode == "LOOPBACK" {
					submit = js.submit(job, "LOOPBACK", "", "")
				} else {
					pool := startPool(t, bin, baseEnv(t, "LUMEN_CASSANDRA_PASSWORD="+casPassword))
					submit = js.submit(job, "EXTERNAL", pool, bin)
				}
				args := append(submit, "--brokers="+strings.Join(brokers, ","), "--topic_prefix="+prefix,
					"--start=earliest", "--store="+store, "--refresh=0", "--for=5m", "--metrics_addr=127.0.0.1:0")
				start := time.Now()
				launcher := startProcess(t, "launcher", baseEnv(t, "LUMEN_CASSANDRA_PASSWORD="+casPassword), bin, args...)
				st := openStore(t, store)
				awaitSpeedTotals(t, st, tr, launcher, 3*time.Minute)
				t.Logf("%s: every event counted or late after %v", job, time.Since(start).Round(100*time.Millisecond))
				launcher.cmd.Process.Signal(os.Interrupt)
				if err := launcher.wait(t, 2*time.Minute); err != nil {
					t.Fatalf("the launcher failed to stop: %v; output:\n%s", err, tail(launcher.output(), 40))
				}
				if !strings.Contains(launcher.output(), "stream: stopped") {
					t.Errorf("the launcher did not report the stop; output:\n%s", tail(launcher.output(), 40))
				}
				sj := findJob(t, js.endpoint, job)
				if s := sj.info.GetState(); s != jobpb.JobState_CANCELLED {
					t.Errorf("after the stop, %s is %v on %s, want CANCELLED", job, s, js.name)
				}
				checkSpeedAgainstTruth(t, st, tr)
				checkCarries(t, job, marshal(t, sj.info.GetPipelineOptions()), sj.pipeline,
					[]string{brokers[0], prefix + "app_load", strings.TrimPrefix(store, "sqlite:")},
					map[string]string{"the Cassandra password in the environment": casPassword})
			})
		}
	})
}

// awaitSpeedTotals waits until the speed layer's minute and hour counts
// and late counts add up to every valid event sent, and its days to its
// minutes. It is a condition, not a deadline: it fails only when the sums
// have not moved for stall, or the launcher p has exited.
func awaitSpeedTotals(t *testing.T, st serving.Store, tr *gen.StreamTruth, p *process, stall time.Duration) {
	t.Helper()
	awaitAccounted(t, st, tr, stall, func() string {
		select {
		case <-p.done:
			return fmt.Sprintf("the launcher exited: %v; output:\n%s", p.err, tail(p.output(), 40))
		default:
			return ""
		}
	})
}

// awaitAccounted is awaitSpeedTotals for any stream: gone says why the
// stream is gone, or "" while it runs.
func awaitAccounted(t *testing.T, st serving.Store, tr *gen.StreamTruth, stall time.Duration, gone func() string) {
	t.Helper()
	last, since := "", time.Now()
	for {
		if why := gone(); why != "" {
			t.Fatalf("the speed layer stopped short (%s): %s", last, why)
		}
		speed, late, _ := speedState(t, st, tr)
		sums := map[string]int64{}
		for k, n := range speed {
			if k.Version == aggregate.AllVersions {
				sums[k.Gran] += n
			}
		}
		for k, n := range late {
			if k.Version == aggregate.AllVersions {
				sums[k.Gran+"+late"] += n
			}
		}
		minutes, hours := sums["minute"]+sums["minute+late"], sums["hour"]+sums["hour+late"]
		if minutes == tr.Valid && hours == tr.Valid && sums["day"] == sums["minute"] {
			return
		}
		now := fmt.Sprintf("minutes %d, hours %d (with late), days %d; sent %d valid", minutes, hours, sums["day"], tr.Valid)
		if now != last {
			last, since = now, time.Now()
		}
		if time.Since(since) > stall {
			t.Fatalf("the speed layer made no progress for %v: %s", stall, last)
		}
		time.Sleep(time.Second)
	}
}

// checkSpeedAgainstTruth: every minute and hour of the truth is the speed
// count plus the late count, exactly; no bucket is counted that the truth
// lacks; days count at most the truth (late events are not in them); and
// some events were on time, some late.
func checkSpeedAgainstTruth(t *testing.T, st serving.Store, tr *gen.StreamTruth) {
	t.Helper()
	if total, totalLate := speedAgainstTruth(t, st, tr); total == 0 || totalLate == 0 {
		t.Errorf("counted %d, late %d: want some of each", total, totalLate)
	}
}

// speedAgainstTruth is checkSpeedAgainstTruth but for the share of late
// events, which it returns with the events counted on time.
func speedAgainstTruth(t *testing.T, st serving.Store, tr *gen.StreamTruth) (total, totalLate int64) {
	t.Helper()
	speed, late, users := speedState(t, st, tr)
	var diffs []string
	for k, want := range tr.Counts {
		if k.Gran == "day" {
			if speed[k] > want {
				diffs = append(diffs, fmt.Sprintf("%v: speed %d > truth %d", k, speed[k], want))
			}
			continue
		}
		if got := speed[k] + late[k]; got != want {
			diffs = append(diffs, fmt.Sprintf("%v: speed %d + late %d = %d, want %d", k, speed[k], late[k], got, want))
		}
		if k.Gran == "minute" && k.Version == aggregate.AllVersions {
			total += speed[k]
			totalLate += late[k]
		}
	}
	for k, n := range speed {
		if _, ok := tr.Counts[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%v: speed %d, not in the truth", k, n))
		}
	}
	for k, n := range late {
		if _, ok := tr.Counts[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%v: late %d, not in the truth", k, n))
		}
	}
	reportDiffs(t, "speed + late vs truth", diffs)
	for k, r := range users {
		if r.Events != speed[k] {
			t.Errorf("%v: sketch of %d events, day count %d", k, r.Events, speed[k])
		}
	}
	if total+totalLate != tr.Valid {
		t.Errorf("counted %d + late %d, want %d valid", total, totalLate, tr.Valid)
	}
	t.Logf("%d valid events: %d counted live, %d dropped as late; %d buckets compared", tr.Valid, total, totalLate, len(tr.Counts))
	return total, totalLate
}
