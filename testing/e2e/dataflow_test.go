package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pipepb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/pipeline_v1"
	df "google.golang.org/api/dataflow/v1b3"
	"google.golang.org/protobuf/encoding/prototext"
)

// TestDataflowDryRun: cmd/batch and cmd/stream, built, translate their
// jobs with --runner=dataflow --dry_run, a fake project, region and
// staging location, no Google credentials and no network, and print the
// portable pipeline they would stage and the v1b3 job they would submit
// (runner v2: the job has no steps; the graph is the pipeline). Both hold
// the expected steps, the settings the workers need (store, S3 endpoint
// and region, Kafka brokers, topics and group), and none of the secrets
// the launcher has: the Cassandra password (from a password file and from
// the environment) and the AWS secret key.
func TestDataflowDryRun(t *testing.T) {
	passwordFile := filepath.Join(t.TempDir(), "password")
	filePassword, envPassword, awsSecret := secret(t), secret(t), secret(t)
	if err := os.WriteFile(passwordFile, []byte(filePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := sqliteURL(t)
	for _, c := range []struct {
		name, typ      string
		args, settings []string
		steps          map[string]string // unique name → URN
		experiments    []string
	}{{
		name: "batch", typ: "JOB_TYPE_BATCH",
		args: []string{"--input=s3://lumen-lake/root", "--as_of=2026-11-24", "--s3_endpoint=https://s3.eu-west-1.example.com",
			"--s3_region=eu-west-1"},
		settings: []string{"s3://lumen-lake/root", "https://s3.eu-west-1.example.com", "eu-west-1"},
		steps: map[string]string{
			"pipelines.Batch/pipelines.planFn":                                        "beam:transform:pardo:v1",
			"pipelines.Batch/pipelines.readPartitionsFn":                              "beam:transform:pardo:v1",
			"pipelines.Batch/pipelines.cutPartitionFn":                                "beam:transform:pardo:v1",
			"pipelines.Batch/transforms.MergePartials/CombinePerKey":                  "beam:transform:combine_per_key:v1",
			"pipelines.Batch/pipelines.WriteCounts/pipelines.writeCountsFn":           "beam:transform:pardo:v1",
			"pipelines.Batch/pipelines.WriteUsers/pipelines.writeUsersFn":             "beam:transform:pardo:v1",
			"pipelines.Batch/pipelines.RecordRun/pipelines.recordRunFn":               "beam:transform:pardo:v1",
			"pipelines.Batch/pipelines.WriteDeadLetters/pipelines.writeDeadLettersFn": "beam:transform:pardo:v1",
		},
		experiments: []string{"use_runner_v2"},
	}, {
		name: "stream", typ: "JOB_TYPE_STREAMING",
		args:     []string{"--brokers=k1.example:9092,k2.example:9092", "--topic_prefix=prod.", "--start=committed", "--group=lumen-stream", "--commit_offsets"},
		settings: []string{"k1.example:9092", "k2.example:9092", "prod.app_load", "lumen-stream"},
		steps: map[string]string{
			"pipelines.Stream/kafkaio.ReadPartials/kafkaio.readPartialsFn":         "beam:transform:pardo:v1",
			"pipelines.Stream/transforms.PaneDeltas/WindowInto":                    "beam:transform:window_into:v1",
			"pipelines.Stream/transforms.PaneDeltas/transforms.paneMergeFn":        "beam:transform:pardo:v1",
			"pipelines.Stream/transforms.Totals(day)/transforms.totalsFn":          "beam:transform:pardo:v1",
			"pipelines.Stream/pipelines.WriteSpeedCounts/pipelines.streamCountsFn": "beam:transform:pardo:v1",
			"pipelines.Stream/pipelines.WriteSpeedUsers/pipelines.streamUsersFn":   "beam:transform:pardo:v1",
			"pipelines.Stream/pipelines.WriteLate/pipelines.streamLateFn":          "beam:transform:pardo:v1",
		},
		experiments: []string{"use_runner_v2", "enable_streaming_engine"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			bin := command(t, c.name)
			args := append([]string{"--runner=dataflow", "--dry_run", "--project=fake-project", "--region=us-central1",
				"--staging_location=gs://fake-bucket/staging", "--verbose", "--store=" + store,
				"--cassandra_username=lumen", "--cassandra_password_file=" + passwordFile}, c.args...)
			start := time.Now()
			p := startProcess(t, c.name, baseEnv(t, "LUMEN_CASSANDRA_PASSWORD="+envPassword, "AWS_SECRET_ACCESS_KEY="+awsSecret),
				bin, args...)
			if err := p.wait(t, 2*time.Minute); err != nil {
				t.Fatalf("%s --dry_run: %v; output:\n%s", c.name, err, tail(p.output(), 40))
			}
			t.Logf("%s --dry_run took %v", c.name, time.Since(start).Round(100*time.Millisecond))
			model, job, jobJSON := dryRunOutput(t, p.output())

			if job.Type != c.typ || job.ProjectId != "fake-project" {
				t.Errorf("job type %s of project %s, want %s of fake-project", job.Type, job.ProjectId, c.typ)
			}
			for _, e := range c.experiments {
				if !slices.Contains(job.Environment.Experiments, e) {
					t.Errorf("job experiments %v lack %s", job.Environment.Experiments, e)
				}
			}
			if pools := job.Environment.WorkerPools; len(pools) != 1 || len(pools[0].Packages) != 1 ||
				!strings.HasPrefix(pools[0].Packages[0].Location, "gs://fake-bucket/staging/") {
				t.Errorf("the workers get no worker binary from the staging location: %+v", pools)
			}
			var steps []string
			for _, tr := range model.GetComponents().GetTransforms() {
				if want, ok := c.steps[tr.GetUniqueName()]; ok {
					steps = append(steps, tr.GetUniqueName())
					if tr.GetSpec().GetUrn() != want {
						t.Errorf("%s is %s, want %s", tr.GetUniqueName(), tr.GetSpec().GetUrn(), want)
					}
				}
			}
			if len(steps) != len(c.steps) {
				t.Errorf("the pipeline has %d of the %d expected steps: %v", len(steps), len(c.steps), steps)
			}
			// The settings reach the workers through the graph (and, on
			// Dataflow, the job's options); no secret is in either.
			checkCarries(t, c.name, jobJSON, model, append(c.settings, strings.TrimPrefix(store, "sqlite:")),
				map[string]string{"the Cassandra password from --cassandra_password_file": filePassword,
					"the Cassandra password from LUMEN_CASSANDRA_PASSWORD": envPassword, "the AWS secret key": awsSecret})
		})
	}
}

// dryRunOutput finds, in a command's log, the pipeline and the job that
// Dataflow's --dry_run prints, and the job as printed (JSON).
func dryRunOutput(t *testing.T, out string) (*pipepb.Pipeline, *df.Job, []byte) {
	t.Helper()
	var model *pipepb.Pipeline
	var job *df.Job
	var jobJSON []byte
	for _, line := range strings.Split(out, "\n") {
		_, msg, ok := strings.Cut(line, " msg=")
		if !ok {
			continue
		}
		q, err := strconv.QuotedPrefix(msg)
		if err != nil {
			continue
		}
		text, _ := strconv.Unquote(q)
		switch {
		case strings.HasPrefix(text, "components:"):
			model = &pipepb.Pipeline{}
			if err := prototext.Unmarshal([]byte(text), model); err != nil {
				t.Fatalf("the dry run's pipeline: %v", err)
			}
		case strings.HasPrefix(text, "{") && strings.Contains(text, `"projectId"`):
			job, jobJSON = &df.Job{}, []byte(text)
			if err := json.Unmarshal(jobJSON, job); err != nil {
				t.Fatalf("the dry run's job: %v", err)
			}
		}
	}
	if model == nil || job == nil {
		t.Fatalf("the dry run printed no pipeline or no job; output:\n%s", tail(out, 40))
	}
	return model, job, jobJSON
}
