package pipelines

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/runtime/graphx"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/util/protox"
	pipepb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/pipeline_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow/dataflowlib"
	df "google.golang.org/api/dataflow/v1b3"
	"google.golang.org/protobuf/proto"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/io/cassandraio"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
)

// The Dataflow translation of both graphs, offline: the portable pipeline
// proto Dataflow's runner (v2) stages and the v1b3 job it submits, built
// the way --runner=dataflow builds them (a Docker environment with the Go
// SDK's image), with no credentials, project or network. The job's steps
// are empty on runner v2: the graph is the staged proto, so the steps are
// asserted there. testing/e2e's TestDataflowDryRun runs the commands
// themselves with --runner=dataflow --dry_run.

const (
	translateStore    = "cassandra://lumen@c1.example,c2.example:9042/lumen_prod?rate=5000&workers=4&consistency=LOCAL_QUORUM"
	translateEndpoint = "https://s3.eu-west-1.example.com"
	translatePassword = "translate-secret-3b1f9c"
	translateAWSKey   = "translate-aws-secret-8d2e"
)

// translateEnv is the launching process's environment: the Cassandra
// password and AWS secret are there (as cmd/ puts them), never in the graph.
func translateEnv(t *testing.T) {
	t.Setenv(cassandraio.EnvPassword, translatePassword)
	t.Setenv("AWS_SECRET_ACCESS_KEY", translateAWSKey)
}

func TestDataflowTranslationBatch(t *testing.T) {
	translateEnv(t)
	cfg := BatchConfig{Input: "s3://lumen-lake/root", AsOf: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Store: translateStore,
		S3:   s3fs.Options{Endpoint: translateEndpoint, Region: "eu-west-1", PathStyle: s3fs.PathStyleOn},
		Plan: raw.PlanOptions{TargetBytes: 64 << 20}}
	p, s := beam.NewPipelineWithRoot()
	if err := BuildBatch(s, cfg); err != nil {
		t.Fatal(err)
	}
	model, job := translate(t, p, false)
	g := newTranslation(t, model)

	g.want(t, "pipelines.Batch/pipelines.planFn", "beam:transform:pardo:v1", `"Root":"s3://lumen-lake/root"`, translateEndpoint, `"Region":"eu-west-1"`)
	g.want(t, "pipelines.Batch/pipelines.readPartitionsFn", "beam:transform:pardo:v1", translateEndpoint)
	// Each partition's partials are grouped, written as its rollup next
	// to the input, and cut to the window.
	g.want(t, "pipelines.Batch/CoGBK", "beam:transform:group_by_key:v1")
	g.want(t, "pipelines.Batch/pipelines.cutPartitionFn", "beam:transform:pardo:v1", `"RollupRoot":"s3://lumen-lake/root"`, translateEndpoint)
	g.want(t, "pipelines.Batch/Reshuffle", "beam:transform:reshuffle:v1")
	// The shared combine merges the partials per (kind, app), by hour.
	g.want(t, "pipelines.Batch/transforms.MergePartials/CombinePerKey", "beam:transform:combine_per_key:v1",
		"aggregate.CombineFn", combineJSON(t, aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14}))
	for _, w := range []string{"pipelines.WriteCounts/pipelines.writeCountsFn", "pipelines.WriteUsers/pipelines.writeUsersFn",
		"pipelines.RecordRun/pipelines.recordRunFn"} {
		g.want(t, "pipelines.Batch/"+w, "beam:transform:pardo:v1", "lumen_prod", "workers=4")
	}
	g.want(t, "pipelines.Batch/pipelines.WriteDeadLetters/pipelines.writeDeadLettersFn", "beam:transform:pardo:v1",
		"s3://lumen-lake/root/deadletter/batch/dt=2026-11-24", translateEndpoint)
	if len(model.GetRequirements()) != 0 {
		t.Errorf("the batch graph requires %v; it must need no SDF, state or timers (DESIGN §7)", model.GetRequirements())
	}
	checkJob(t, job, "JOB_TYPE_BATCH")
	g.noSecrets(t, job, translatePassword, translateAWSKey)
}

func TestDataflowTranslationStream(t *testing.T) {
	translateEnv(t)
	cfg := StreamConfig{Store: translateStore, TopicPrefix: "prod.",
		Kafka: kafkaio.ReadConfig{Brokers: []string{"k1.example:9092", "k2.example:9092"}, Start: kafkaio.StartCommitted, Group: "lumen-stream", CommitOffsets: true}}
	p, s := beam.NewPipelineWithRoot()
	if err := BuildStream(s, cfg); err != nil {
		t.Fatal(err)
	}
	model, job := translate(t, p, true)
	g := newTranslation(t, model)

	// The Kafka reader is a splittable DoFn with the brokers, topics and
	// group in its fields, and it adds events with the shared combine.
	minute := combineJSON(t, aggregate.CombineFn{Gran: aggregate.Minute, Precision: 14})
	read := g.want(t, "pipelines.Stream/kafkaio.ReadPartials/kafkaio.readPartialsFn", "beam:transform:pardo:v1",
		"k1.example:9092", "k2.example:9092", "prod.app_load", "prod.handled_exception", `"Group":"lumen-stream"`, minute)
	if read.pardo.GetRestrictionCoderId() == "" {
		t.Error("kafkaio.readPartialsFn is not splittable (no restriction coder)")
	}
	// Minute windows fire every 2 s and merge with the shared combine.
	g.want(t, "pipelines.Stream/transforms.PaneDeltas/WindowInto", "beam:transform:window_into:v1")
	g.want(t, "pipelines.Stream/transforms.PaneDeltas/CoGBK", "beam:transform:group_by_key:v1")
	g.want(t, "pipelines.Stream/transforms.PaneDeltas/transforms.paneMergeFn", "beam:transform:pardo:v1", minute)
	early := false
	for _, w := range model.GetComponents().GetWindowingStrategies() {
		var fw pipepb.FixedWindowsPayload
		if w.GetWindowFn().GetUrn() != "beam:window_fn:fixed_windows:v1" || proto.Unmarshal(w.GetWindowFn().GetPayload(), &fw) != nil ||
			fw.GetSize().AsDuration() != time.Minute {
			continue
		}
		ae := w.GetTrigger().GetAfterEndOfWindow()
		d := ae.GetEarlyFirings().GetRepeat().GetSubtrigger().GetAfterProcessingTime().GetTimestampTransforms()
		early = early || (len(d) == 1 && d[0].GetDelay().GetDelayMillis() == 2000 && ae.GetLateFirings() != nil)
	}
	if !early {
		t.Error("no one-minute fixed windowing fires early every 2 s and late")
	}
	// Running totals per minute, hour and day are keyed state.
	for _, d := range []string{"minute", "hour", "day"} {
		tot := g.want(t, "pipelines.Stream/transforms.Totals("+d+")/transforms.totalsFn", "beam:transform:pardo:v1")
		if len(tot.pardo.GetStateSpecs()) == 0 {
			t.Errorf("totals per %s keep no state", d)
		}
	}
	for _, w := range []string{"pipelines.WriteSpeedCounts/pipelines.streamCountsFn", "pipelines.WriteSpeedCounts'1/pipelines.streamCountsFn",
		"pipelines.WriteSpeedCounts'2/pipelines.streamCountsFn", "pipelines.WriteSpeedUsers/pipelines.streamUsersFn",
		"pipelines.WriteLate/pipelines.streamLateFn", "pipelines.WriteLate'1/pipelines.streamLateFn"} {
		g.want(t, "pipelines.Stream/"+w, "beam:transform:pardo:v1", "lumen_prod", "workers=4")
	}
	g.want(t, "pipelines.Stream/kafkaio.WriteDeadLetters/kafkaio.writeDeadLettersFn", "beam:transform:pardo:v1", "k1.example:9092")
	for _, r := range []string{"beam:requirement:pardo:splittable_dofn:v1", "beam:requirement:pardo:stateful:v1"} {
		if !strings.Contains(strings.Join(model.GetRequirements(), " "), r) {
			t.Errorf("the stream's requirements %v lack %s", model.GetRequirements(), r)
		}
	}
	checkJob(t, job, "JOB_TYPE_STREAMING")
	g.noSecrets(t, job, translatePassword, translateAWSKey)
}

// translate marshals p as Dataflow's runner does and translates it into
// the job it would submit.
func translate(t *testing.T, p *beam.Pipeline, streaming bool) (*pipepb.Pipeline, *df.Job) {
	t.Helper()
	ctx := context.Background()
	edges, _, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	image := "apache/beam_go_sdk:" + core.SdkVersion
	env, err := graphx.CreateEnvironment(ctx, graphx.URNEnvDocker, func(context.Context) string { return image })
	if err != nil {
		t.Fatal(err)
	}
	model, err := graphx.Marshal(edges, &graphx.Options{Environment: env})
	if err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256(protox.MustEncode(model))
	job, err := dataflowlib.Translate(ctx, model, &dataflowlib.JobOptions{
		Name: "lumen-translate", Project: "fake-project", Region: "us-central1", Streaming: streaming,
		Experiments: []string{"use_runner_v2", "use_portable_job_submission"},
		Options:     beam.PipelineOptions.Export(), TempLocation: "gs://fake-bucket/staging/tmp", ContainerImage: image,
	}, "gs://fake-bucket/staging/job/worker", "gs://fake-bucket/staging/job/model", hex.EncodeToString(hash[:]))
	if err != nil {
		t.Fatal(err)
	}
	return model, job
}

// checkJob: the job is of its type and gives the workers what they need:
// the worker binary, the SDK's container image and the staged pipeline.
func checkJob(t *testing.T, job *df.Job, typ string) {
	t.Helper()
	if job.Type != typ {
		t.Errorf("job type %s, want %s", job.Type, typ)
	}
	pools := job.Environment.WorkerPools
	if len(pools) != 1 || len(pools[0].Packages) == 0 || pools[0].Packages[0].Location != "gs://fake-bucket/staging/job/worker" {
		t.Errorf("the workers get no worker binary: %+v", pools)
	} else if imgs := pools[0].SdkHarnessContainerImages; len(imgs) != 1 || !strings.HasSuffix(imgs[0].ContainerImage, "beam_go_sdk:"+core.SdkVersion) {
		t.Errorf("the workers run no Go SDK %s image: %+v", core.SdkVersion, imgs)
	}
	opts, _ := json.Marshal(job.Environment.SdkPipelineOptions)
	if !bytes.Contains(opts, []byte("gs://fake-bucket/staging/job/model")) {
		t.Errorf("the job's options do not name the staged pipeline: %s", opts)
	}
}

// translation indexes a pipeline proto's transforms by name, with the
// JSON fields of their Go DoFns and combine functions decoded.
type translation struct {
	model  *pipepb.Pipeline
	byName map[string]node
}

type node struct {
	urn   string
	pardo *pipepb.ParDoPayload
	fn    []byte // the decoded Go function payload: type and JSON fields
}

func newTranslation(t *testing.T, model *pipepb.Pipeline) *translation {
	t.Helper()
	g := &translation{model: model, byName: map[string]node{}}
	for _, tr := range model.GetComponents().GetTransforms() {
		n := node{urn: tr.GetSpec().GetUrn()}
		var goFn []byte
		switch n.urn {
		case "beam:transform:pardo:v1":
			n.pardo = &pipepb.ParDoPayload{}
			if err := proto.Unmarshal(tr.GetSpec().GetPayload(), n.pardo); err != nil {
				t.Fatal(err)
			}
			goFn = n.pardo.GetDoFn().GetPayload()
		case "beam:transform:combine_per_key:v1":
			var cp pipepb.CombinePayload
			if err := proto.Unmarshal(tr.GetSpec().GetPayload(), &cp); err != nil {
				t.Fatal(err)
			}
			goFn = cp.GetCombineFn().GetPayload()
		}
		if goFn != nil {
			d, err := base64.StdEncoding.DecodeString(string(goFn))
			if err != nil {
				t.Fatalf("%s: Go function payload: %v", tr.GetUniqueName(), err)
			}
			n.fn = d
		}
		g.byName[tr.GetUniqueName()] = n
	}
	return g
}

// want returns the transform named name, checking its URN and that its
// function carries every one of fields.
func (g *translation) want(t *testing.T, name, urn string, fields ...string) node {
	t.Helper()
	n, ok := g.byName[name]
	if !ok {
		var names []string
		for k := range g.byName {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Fatalf("no step %s; steps:\n%s", name, strings.Join(names, "\n"))
	}
	if n.urn != urn {
		t.Errorf("%s is %s, want %s", name, n.urn, urn)
	}
	for _, f := range fields {
		if !bytes.Contains(n.fn, []byte(f)) {
			t.Errorf("%s does not carry %s: %q", name, f, n.fn)
		}
	}
	return n
}

// noSecrets: no secret is in the pipeline (functions included) or the job.
func (g *translation) noSecrets(t *testing.T, job *df.Job, secrets ...string) {
	t.Helper()
	blobs := [][]byte{protox.MustEncode(g.model)}
	for _, n := range g.byName {
		blobs = append(blobs, n.fn)
	}
	js, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	blobs = append(blobs, js)
	for _, s := range secrets {
		for _, b := range blobs {
			if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(s)))) {
				t.Errorf("a secret (%.9s…) is in the translated job", s)
				break
			}
		}
	}
}

func combineJSON(t *testing.T, c aggregate.CombineFn) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
