package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/archive"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// TestArchiveCrash: cmd/archive, built and run as a process, is killed
// with SIGKILL in the middle of a live feed and restarted; the restart
// finds uncommitted files of its predecessor (real ones if the kill fell
// between a roll and its commit, and, always, torn ones the test writes
// with other segment boundaries), deletes them before writing those
// records again, and a SIGTERM then stops it cleanly. Nothing is lost or
// doubled: the archive holds every record sent exactly once, and the batch
// over it equals the truth exactly.
func TestArchiveCrash(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "archive")
	build := exec.Command("go", "build", "-o", bin, "github.com/lumenhq/lumen/cmd/archive")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/archive: %v\n%s", err, out)
	}
	brokers, prefix := kafkatest.Cluster(t, 3)
	root := t.TempDir()
	group := prefix + "archive"
	cfg := archiveGenConfig(43)

	var tr *gen.Truth
	var sent recordSet
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		tr, sent = produceForArchive(t, brokers, prefix, cfg, 6_000)
	}()
	args := []string{"--brokers=" + strings.Join(brokers, ","), "--topic_prefix=" + prefix, "--group=" + group,
		"--output=" + root, "--instance_id=archive-0", "--session_timeout=10s", "--roll_records=250",
		"--roll_interval=300ms", "--progress_interval=1s", "--metrics_addr=127.0.0.1:0",
		// A first deployment over a log that is whole from the dataset's start.
		"--seal_from=" + cfg.Start.Format(time.RFC3339)}

	first := startArchiver(t, bin, args)
	var atKill int64
	for deadline := time.Now().Add(time.Minute); atKill < 5_000; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || first.exited() {
			t.Fatalf("the archiver did not commit 5,000 records within a minute; log:\n%s", first.log())
		}
		c, _ := groupProgress(t, brokers, group, prefix)
		atKill = 0
		for _, n := range c {
			atKill += max(0, n)
		}
	}
	first.kill(t)
	t.Logf("killed with %d records committed", atKill)
	<-produced // the restart has a backlog to work through
	if t.Failed() {
		return
	}
	committed, end := groupProgress(t, brokers, group, prefix)
	leftovers := uncommittedFiles(t, root, committed)
	natural := len(leftovers)
	for _, p := range writeTornLeftovers(t, brokers, root, prefix, committed, end) {
		leftovers[p] = true
	}
	t.Logf("uncommitted files left by the kill: %d; with the torn ones the test added: %d", natural, len(leftovers))

	second := startArchiver(t, bin, args)
	awaitCaughtUp(t, brokers, group, prefix, 2*time.Minute, func() int64 { return int64(len(second.log())) }, func() string { return "archiver log:\n" + second.log() })
	if code := second.term(t); code != 0 {
		t.Fatalf("the archiver exited %d after SIGTERM; log:\n%s", code, second.log())
	}
	m := regexp.MustCompile(`msg="archive: stopped".* leftovers_removed=(\d+)`).FindStringSubmatch(second.log())
	if m == nil {
		t.Fatalf("no final progress line; log:\n%s", second.log())
	}
	if removed, _ := strconv.Atoi(m[1]); removed < len(leftovers) {
		t.Errorf("the restart removed %d leftovers, want at least %d", removed, len(leftovers))
	}
	checkArchive(t, root, prefix, sent)
	batchOverArchive(t, root, s3fs.Options{}, cfg, tr)
}

// archiverProcess is cmd/archive running as a child process.
type archiverProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func startArchiver(t *testing.T, bin string, args []string) *archiverProcess {
	t.Helper()
	p := &archiverProcess{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.buf.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *archiverProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *archiverProcess) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// kill sends SIGKILL: no roll, no commit, no goodbye to the group.
func (p *archiverProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// term sends SIGTERM and returns the exit code.
func (p *archiverProcess) term(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("the archiver did not stop within a minute of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// uncommittedFiles returns the raw files whose first offset is at or
// after their partition's committed offset: written, never committed.
func uncommittedFiles(t *testing.T, root string, committed map[string]int64) map[string]bool {
	t.Helper()
	files, err := blob.ListPrefix(context.Background(), root+"/raw/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range files {
		topic, part, first, ok := archive.ParseObjectName(path.Base(f.Path))
		if ok && first >= committed[fmt.Sprintf("%s/%d", topic, part)] {
			out[f.Path] = true
		}
	}
	return out
}

// writeTornLeftovers plays a predecessor that died after writing, but
// before committing, two segments of every partition with other boundaries
// than the restart will choose: offsets [C, C+70) and [C+70, C+160) from
// the committed offset C (as far as the partition goes), as one file per
// arrival hour each, named as the archiver names them. It returns their
// paths.
func writeTornLeftovers(t *testing.T, brokers []string, root, prefix string, committed, end map[string]int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	parts := map[string]map[int32]kgo.Offset{}
	want := map[string]int64{}
	for k, c := range committed {
		c = max(0, c)
		if want[k] = min(160, end[k]-c); want[k] <= 0 {
			continue
		}
		i := strings.LastIndex(k, "/")
		p, _ := strconv.Atoi(k[i+1:])
		if parts[k[:i]] == nil {
			parts[k[:i]] = map[int32]kgo.Offset{}
		}
		parts[k[:i]][int32(p)] = kgo.NewOffset().At(c)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(parts))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	type fileKey struct {
		dir, name string
	}
	files := map[fileKey][]event.Event{}
	kinds := map[fileKey]event.Kind{}
	got := map[string]int64{}
	done := func() bool {
		for k, n := range want {
			if got[k] < n {
				return false
			}
		}
		return true
	}
	dec := event.NewDecoder()
	for !done() && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			c := max(0, committed[k])
			if r.Offset >= c+want[k] {
				return
			}
			got[k]++
			first := c
			if r.Offset >= c+70 {
				first = c + 70
			}
			var e event.Event
			kind, _ := kafkaio.KindOfTopic(prefix, r.Topic)
			if dec.DecodeSingle(r.Value, &e) != nil || e.Kind != kind {
				return
			}
			fk := fileKey{raw.HourDir(root, kind, e.ReceivedAt().Truncate(time.Hour)), archive.ObjectName(r.Topic, r.Partition, first)}
			files[fk] = append(files[fk], e.Clone())
			kinds[fk] = kind
		})
	}
	if !done() {
		t.Fatalf("could not read the records past the committed offsets: read %v of %v", got, want)
	}
	keys := make([]fileKey, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].dir+keys[i].name < keys[j].dir+keys[j].name })
	var paths []string
	for _, k := range keys {
		out, err := blob.Create(context.Background(), k.dir+"/"+k.name)
		if err != nil {
			t.Fatal(err)
		}
		w, err := avroio.NewEventWriter(out, kinds[k], avroio.WithCodec(avroio.CodecSnappy))
		if err != nil {
			t.Fatal(err)
		}
		for i := range files[k] {
			w.AppendEvent(&files[k][i])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, k.dir+"/"+k.name)
	}
	return paths
}
