package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"
	pipepb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/pipeline_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/grpcx"
	"google.golang.org/protobuf/proto"
)

// The commands, built once per test binary.
var (
	builtMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// command builds cmd/<name> (once per test binary) and returns its path.
// Tests run the commands as operators do: launcher, worker pool and
// PROCESS worker are the same binary.
func command(t testing.TB, name string) string {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if bin, ok := built[name]; ok {
		return bin
	}
	if builtDir == "" {
		d, err := os.MkdirTemp("", "lumen-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builtDir = d
	}
	bin := filepath.Join(builtDir, name)
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, "github.com/lumenhq/lumen/cmd/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	t.Logf("built cmd/%s in %v", name, time.Since(start).Round(100*time.Millisecond))
	built[name] = bin
	return bin
}

func cleanupCommands() {
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// baseEnv is a child's environment: nothing of the test's but PATH, and a
// HOME of its own, so no credentials or settings come from the machine
// (the AWS chain would read ~/.aws). extra is added as is.
func baseEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir(),
		"AWS_EC2_METADATA_DISABLED=true"}, extra...)
}

// process is a command running as a child process; its stdout and
// stderr are collected.
type process struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	line chan string // stderr and stdout lines, while someone listens
	done chan struct{}
	err  error
}

func startProcess(t testing.TB, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), line: make(chan string, 64), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Dir = t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits for the process to exit, at most timeout, and returns its
// error (nil for exit status 0).
func (p *process) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %v; output:\n%s", p.name, timeout, tail(p.output(), 60))
		return nil
	}
}

// stop interrupts the process and waits for it, killing it after 30 s.
func (p *process) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Logf("%s ignored SIGINT for 30 s; killed", p.name)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// await returns the first submatch of re in the process's output, waiting
// at most timeout for it.
func (p *process) await(t testing.TB, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := re.FindStringSubmatch(p.output()); m != nil {
			return m[1]
		}
		select {
		case <-p.line:
		case <-p.done:
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return m[1]
			}
			t.Fatalf("%s exited (%v) before printing %v; output:\n%s", p.name, p.err, re, tail(p.output(), 60))
		case <-deadline:
			t.Fatalf("%s printed no %v within %v; output:\n%s", p.name, re, timeout, tail(p.output(), 60))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

var poolAddr = regexp.MustCompile(`worker pool at (localhost:\d+)`)

// startPool runs bin as a worker pool (--worker_pool) in a process of its
// own with env, and returns its address once it serves. A job service
// (prism 2.77) panics when it cannot reach the pool of an EXTERNAL job, so
// jobs are submitted only once it is up.
func startPool(t testing.TB, bin string, env []string) string {
	t.Helper()
	p := startProcess(t, "worker pool", env, bin, "--worker_pool=0")
	return p.await(t, poolAddr, 30*time.Second)
}

// processWorker writes the command a PROCESS environment runs: it starts
// bin as an SDK worker (--worker) with env. Runners start it with
// --id and the Fn API endpoints; prism (2.77) passes only --id, in single
// quotes that reach the program, and --provision_endpoint, where it also
// serves control and logging. Flink passes every endpoint. Beam's own
// boot program expects the staged binary and fails on prism's quotes.
func processWorker(t testing.TB, bin string, env []string) string {
	t.Helper()
	var exports strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&exports, "export %s=%q\n", k, v)
	}
	script := `#!/bin/sh
# A PROCESS environment's worker: lumen's command in Beam's worker mode.
` + exports.String() + `id= prov= ctl= logs=
for a in "$@"; do
  case "$a" in
    --id=*) id="${a#--id=}"; id="${id#\'}"; id="${id%\'}" ;;
    --provision_endpoint=*) prov="${a#--provision_endpoint=}" ;;
    --control_endpoint=*) ctl="${a#--control_endpoint=}" ;;
    --logging_endpoint=*) logs="${a#--logging_endpoint=}" ;;
  esac
done
exec "` + bin + `" --worker=true --id="$id" --control_endpoint="${ctl:-$prov}" --logging_endpoint="${logs:-$prov}"
`
	path := filepath.Join(t.TempDir(), "lumen-worker")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// submittedJob is what a job service received for one job.
type submittedJob struct {
	info     *jobpb.JobInfo
	pipeline *pipepb.Pipeline
}

// findJob asks the job service at endpoint, through Beam's Job API, for
// the job named name: its state, its pipeline options and its pipeline.
func findJob(t testing.TB, endpoint, name string) submittedJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := grpcx.DefaultDial(ctx, endpoint, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := jobpb.NewJobServiceClient(cc)
	jobs, err := client.GetJobs(ctx, &jobpb.GetJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found []*jobpb.JobInfo
	for _, j := range jobs.GetJobInfo() {
		if j.GetJobName() == name {
			found = append(found, j)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the job service knows %d jobs named %s, want 1", len(found), name)
	}
	p, err := client.GetPipeline(ctx, &jobpb.GetJobPipelineRequest{JobId: found[0].GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	return submittedJob{info: found[0], pipeline: p.GetPipeline()}
}

// checkCarries checks what travels with a job (its pipeline options and
// its pipeline, with the Go SDK's DoFns, combine functions and coders
// decoded): every string of settings is there, and none of secrets is, in
// any form the SDK writes (plain, base64, or base64 inside DoFn JSON).
// secrets maps what each secret is to its value.
func checkCarries(t testing.TB, what string, options []byte, pipeline *pipepb.Pipeline, settings []string, secrets map[string]string) {
	t.Helper()
	blobs := append(expandJSONBase64(options, 2), pipelineBlobs(t, pipeline)...)
	has := func(s string) bool {
		for _, b := range blobs {
			if bytes.Contains(b, []byte(s)) {
				return true
			}
		}
		return false
	}
	for _, s := range settings {
		if !has(s) {
			t.Errorf("%s: %q is not in what the job carries", what, s)
		}
	}
	for name, s := range secrets {
		if has(s) || has(base64.StdEncoding.EncodeToString([]byte(s))) || has(base64.RawStdEncoding.EncodeToString([]byte(s))) {
			t.Errorf("%s: %s travels with the job", what, name)
		}
	}
}

// pipelineBlobs returns the pipeline's wire form and the decoded payloads
// of the Go SDK's functions and coders, which it writes as base64 of a
// proto that holds their fields as JSON.
func pipelineBlobs(t testing.TB, p *pipepb.Pipeline) [][]byte {
	t.Helper()
	out := [][]byte{marshal(t, p)}
	goPayload := func(b []byte) {
		if d, err := base64.StdEncoding.DecodeString(string(b)); err == nil {
			out = append(out, expandJSONBase64(d, 2)...)
		}
	}
	for _, tr := range p.GetComponents().GetTransforms() {
		switch tr.GetSpec().GetUrn() {
		case "beam:transform:pardo:v1":
			var pd pipepb.ParDoPayload
			if err := proto.Unmarshal(tr.GetSpec().GetPayload(), &pd); err != nil {
				t.Fatalf("%s: %v", tr.GetUniqueName(), err)
			}
			goPayload(pd.GetDoFn().GetPayload())
		case "beam:transform:combine_per_key:v1", "beam:transform:combine_globally:v1":
			var cp pipepb.CombinePayload
			if err := proto.Unmarshal(tr.GetSpec().GetPayload(), &cp); err != nil {
				t.Fatalf("%s: %v", tr.GetUniqueName(), err)
			}
			goPayload(cp.GetCombineFn().GetPayload())
		}
	}
	for _, c := range p.GetComponents().GetCoders() {
		goPayload(c.GetSpec().GetPayload())
	}
	for _, w := range p.GetComponents().GetWindowingStrategies() {
		goPayload(w.GetWindowFn().GetPayload())
	}
	return out
}

// quotedBase64 is a JSON string that may be base64 ([]byte fields).
var quotedBase64 = regexp.MustCompile(`"([A-Za-z0-9+/]{8,}={0,2})"`)

// expandJSONBase64 returns b and, to depth levels, the decodings of the
// base64 JSON strings in it.
func expandJSONBase64(b []byte, depth int) [][]byte {
	out := [][]byte{b}
	if depth == 0 {
		return out
	}
	for _, m := range quotedBase64.FindAllSubmatch(b, -1) {
		if d, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			out = append(out, expandJSONBase64(d, depth-1)...)
		}
	}
	return out
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every command says what it is: --version prints its name, the module's
// version and the Go version, and exits 0 (query takes it before a
// subcommand, where --version is an app version).
func TestVersion(t *testing.T) {
	for _, name := range []string{"archive", "batch", "bench", "gen", "query", "stream"} {
		out, err := exec.Command(command(t, name), "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "lumen "+name+" ") || !strings.Contains(string(out), runtime.Version()) {
			t.Errorf("%s --version: %v, %q", name, err, out)
		}
	}
}

// TestHelp: each command's -h lists lumen's flags in groups, each once,
// with none left ungrouped and none of Beam's among them; Beam's flags sit
// behind --help_beam, which lists the runner's.
func TestHelp(t *testing.T) {
	flagName := regexp.MustCompile(`(?m)^  --(\w+)`)
	for _, name := range []string{"archive", "batch", "gen", "stream"} {
		out, err := exec.Command(command(t, name), "-h").CombinedOutput()
		if err != nil {
			t.Errorf("%s -h: %v\n%s", name, err, out)
			continue
		}
		help := string(out)
		if !strings.HasPrefix(help, "usage: "+name) || strings.Contains(help, "Other flags:") {
			t.Errorf("%s -h does not start with its usage, or leaves flags ungrouped:\n%s", name, help)
		}
		beamOut, err := exec.Command(command(t, name), "--help_beam").CombinedOutput()
		if err != nil {
			t.Errorf("%s --help_beam: %v\n%s", name, err, beamOut)
			continue
		}
		beam := map[string]bool{}
		for _, m := range flagName.FindAllStringSubmatch(string(beamOut), -1) {
			beam[m[1]] = true
		}
		seen := map[string]int{}
		for _, m := range flagName.FindAllStringSubmatch(help, -1) {
			seen[m[1]]++
			if beam[m[1]] {
				t.Errorf("%s -h lists Beam's --%s among lumen's flags", name, m[1])
			}
		}
		for f, n := range seen {
			if n != 1 {
				t.Errorf("%s -h lists --%s %d times", name, f, n)
			}
		}
		if seen["version"] != 1 || len(seen) < 5 {
			t.Errorf("%s -h lists %d flags (%v), and must list --version", name, len(seen), seen)
		}
		if name == "batch" || name == "stream" {
			if !beam["runner"] || !beam["endpoint"] || !strings.Contains(help, "--help_beam") {
				t.Errorf("%s: --help_beam lists %d flags (runner %v, endpoint %v); -h points to it: %v",
					name, len(beam), beam["runner"], beam["endpoint"], strings.Contains(help, "--help_beam"))
			}
		}
	}
}
