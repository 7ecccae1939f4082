// Package launch is the launcher side of lumen's jobs: it plans where a
// stream starts and records where it ended (StartStream), runs a stream
// until it is stopped and drains it (RunStream), cancels jobs on a job
// service through Beam's Job API, and serves SDK workers for an external
// environment (ServeWorkers). The graphs themselves are package pipelines';
// pipelines imports nothing of this package.
package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/grpcx"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"

	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
)

// RunStream runs a streaming pipeline on the configured runner (the
// --runner flag; prism by default) until ctx is cancelled, which is how a
// stream stops. A stop is not a failure: RunStream then returns nil.
//
// In process, a stop drains the job: the Kafka readers end where they
// are, the pipeline stores every pane it holds and finishes, and then the
// readers' offsets are committed (kafkaio.Drain, CommitDrained), and sr
// (StartStream's; nil if there is none) records where it ended. A stream
// restarted from them (--start=committed) counts every event once. A
// drain that takes longer than DrainTimeout is cancelled, and RunStream
// returns an error saying what was lost.
//
// An in-process prism (2.77) reports a cancelled job as failed: every
// bundle in flight is logged at ERROR as "Bundle Failed" with "context
// canceled", then "job failed". Once a stream of the process was stopped
// on purpose, those reports, recognised by what they say (a cancelled
// context, or prism's abort after a failed bundle), are logged at INFO
// with expected="…" instead (slog's default logger). Nothing is dropped,
// and every other warning and error keeps its level.
//
// On a job service (a portable runner: universal, flink or spark with
// --endpoint), a stop cancels the job there through Beam's Job API and
// waits up to a minute for it to end: Beam's launcher only stops waiting
// when its context ends, which would leave the job running without the
// launcher (and, in LOOPBACK, without its workers; prism then keeps it
// RUNNING for ever). With --async, RunStream returns once the job is
// submitted, and the job runs until it is cancelled in the runner.
func RunStream(ctx context.Context, p *beam.Pipeline, sr *StreamRun) error {
	installStopFilter()
	UseStreamExperiments()
	if IsJobServiceRunner(*runners.Runner) && !*jobopts.Async {
		return runStreamJob(ctx, p)
	}
	// A stop drains the job (kafkaio.Drain): the readers end where they
	// are, every pending pane fires and is stored, and the job finishes.
	// Only then are the offsets the readers stopped at committed, so a
	// restart from them counts every event once. A drain that does not
	// finish within DrainTimeout is cancelled, and what was in flight is
	// lost: RunStream says so.
	//
	// The job runs under a context of its own, cancelled only once the stop
	// is counted: cancelling it first let prism report the failed last
	// bundles before the filter knew of the stop (a race seen at
	// 20,000 events/s on 2 cores).
	run, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	var (
		mu       sync.Mutex
		ended    bool
		timedOut bool
	)
	stop := context.AfterFunc(ctx, func() {
		kafkaio.Drain()
		time.AfterFunc(DrainTimeout, func() {
			mu.Lock()
			defer mu.Unlock()
			if !ended {
				timedOut = true
				stopped.Store(true)
				cancelRun()
			}
		})
	})
	err := beamx.Run(run, p)
	mu.Lock()
	ended = true
	mu.Unlock()
	if stop() {
		return err // ended by itself
	}
	if timedOut {
		return fmt.Errorf("launch: the stream did not drain within %v and was cancelled: panes not yet stored are lost, "+
			"and the committed offsets are those of the last bundles read (restart with --start=<time of the stop>)", DrainTimeout)
	}
	if err != nil {
		return fmt.Errorf("launch: draining the stream: %w", err)
	}
	ends, n, err := kafkaio.CommitDrained(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("launch: the stream drained, but its offsets were not committed (%d partitions were): %w", n, err)
	}
	if sr != nil {
		if err := sr.drained(context.WithoutCancel(ctx), ends); err != nil {
			return fmt.Errorf("launch: the stream drained, but where it ended was not recorded (the next run may replay more than it needs): %w", err)
		}
	}
	slog.Info("launch: the stream drained: every pane it held is stored", "offsets_committed", n)
	return nil
}

// DrainTimeout bounds how long a stopped stream may take to drain before
// it is cancelled.
var DrainTimeout = 2 * time.Minute

// IsJobServiceRunner reports whether a --runner value submits jobs to a
// job service over Beam's Job API (with --endpoint). prism is not one: it
// starts a job service in process unless given an --endpoint, and is then
// the universal runner.
func IsJobServiceRunner(runner string) bool {
	switch strings.ToLower(runner) {
	case "universal", "portable", "portablerunner", "flink", "flinkrunner", "spark", "sparkrunner":
		return true
	}
	return false
}

// runStreamJob runs a stream on a job service; a stop cancels the job.
func runStreamJob(ctx context.Context, p *beam.Pipeline) error {
	endpoint, err := jobopts.GetEndpoint()
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	// The job is found again by its name, the one handle the Job API gives
	// a launcher before the job ends.
	if *jobopts.JobName == "" {
		*jobopts.JobName = fmt.Sprintf("lumen-stream-%d", time.Now().UnixNano())
		defer func() { *jobopts.JobName = "" }()
	}
	name := *jobopts.JobName
	run, stopWaiting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWaiting()
	var cancelErr error
	cancelled := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelled)
		stopped.Store(true)
		cctx, cancel := context.WithTimeout(run, 30*time.Second)
		defer cancel()
		var n int
		n, cancelErr = CancelJobs(cctx, endpoint, name)
		if n == 0 {
			// Not submitted yet, already over, or unreachable.
			stopWaiting()
			return
		}
		time.AfterFunc(time.Minute, stopWaiting)
	})
	err = beamx.Run(run, p)
	if !stop() {
		<-cancelled
		// A job submitted while the stop was under way is cancelled too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := CancelJobs(cctx, endpoint, name); err != nil || cancelErr != nil {
			return fmt.Errorf("launch: stopped, but job %s may still run; cancel it in the runner: %w", name, errors.Join(cancelErr, err))
		}
		return nil
	}
	return err
}

// CancelJobs asks the job service at endpoint to cancel every job named
// name that has not ended, and returns how many it asked to cancel.
func CancelJobs(ctx context.Context, endpoint, name string) (int, error) {
	cc, err := grpcx.DefaultDial(ctx, endpoint, 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("launch: job service %s: %w", endpoint, err)
	}
	defer cc.Close()
	client := jobpb.NewJobServiceClient(cc)
	jobs, err := client.GetJobs(ctx, &jobpb.GetJobsRequest{})
	if err != nil {
		return 0, fmt.Errorf("launch: job service %s: list jobs: %w", endpoint, err)
	}
	n := 0
	for _, j := range jobs.GetJobInfo() {
		if j.GetJobName() != name || JobEnded(j.GetState()) {
			continue
		}
		if _, err := client.Cancel(ctx, &jobpb.CancelJobRequest{JobId: j.GetJobId()}); err != nil {
			return n, fmt.Errorf("launch: job service %s: cancel %s: %w", endpoint, j.GetJobId(), err)
		}
		n++
	}
	return n, nil
}

// JobEnded reports whether a job in state s has ended.
func JobEnded(s jobpb.JobState_Enum) bool {
	switch s {
	case jobpb.JobState_DONE, jobpb.JobState_FAILED, jobpb.JobState_CANCELLED,
		jobpb.JobState_UPDATED, jobpb.JobState_DRAINED:
		return true
	}
	return false
}

// UseStreamExperiments adds pipelines.StreamExperiments to the job's
// options (--experiments), once each. RunStream calls it; a caller that
// runs a stream otherwise must call it before.
func UseStreamExperiments() {
	for _, exp := range pipelines.StreamExperiments {
		if slices.Contains(jobopts.GetExperiments(), exp) {
			continue
		}
		if *jobopts.Experiments == "" {
			*jobopts.Experiments = exp
		} else {
			*jobopts.Experiments += "," + exp
		}
	}
}

// stopped is set once a stream of this process was stopped on purpose.
var stopped atomic.Bool

var stopFilterOnce sync.Once

func installStopFilter() {
	stopFilterOnce.Do(func() {
		slog.SetDefault(slog.New(stopFilter{slog.Default().Handler()}))
	})
}

// stopFilter logs a runner's reports of a stream's deliberate cancel at
// INFO, marked as expected; it drops nothing.
type stopFilter struct{ slog.Handler }

func (h stopFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && stopped.Load() && cancelNoise(r) {
		info := slog.NewRecord(r.Time, slog.LevelInfo, r.Message, r.PC)
		r.Attrs(func(a slog.Attr) bool { info.AddAttrs(a); return true })
		info.AddAttrs(slog.String("expected", "a stream was stopped on purpose; was "+r.Level.String()))
		if !h.Handler.Enabled(ctx, slog.LevelInfo) {
			return nil
		}
		return h.Handler.Handle(ctx, info)
	}
	return h.Handler.Handle(ctx, r)
}

// cancelNoise reports whether r is what prism logs for a cancelled job:
// an error of a cancelled context, or its abort of a stage after a failed
// bundle.
func cancelNoise(r slog.Record) bool {
	if r.Message == "stage.Execute aborting due to bundle error" {
		return true
	}
	noise := false
	r.Attrs(func(a slog.Attr) bool {
		noise = strings.Contains(a.Value.Resolve().String(), context.Canceled.Error())
		return !noise
	})
	return noise
}

func (h stopFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return stopFilter{h.Handler.WithAttrs(as)}
}

func (h stopFilter) WithGroup(name string) slog.Handler {
	return stopFilter{h.Handler.WithGroup(name)}
}
