package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/archive"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/testing/gen"
	"github.com/lumenhq/lumen/testing/s3test"
)

// archiveGenConfig is the traffic of the archiver's end-to-end tests: a few
// days with offline devices reporting hours to days late, skewed clocks,
// too-old events and damaged records.
func archiveGenConfig(seed uint64) gen.Config {
	return gen.Config{Seed: seed, Start: time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC), Days: 3, WindowDays: 3,
		Events: 30_000, Apps: 8, OfflineShare: 0.1, SkewShare: 0.02, TooOld: 60, InvalidShare: 0.002}
}

// byReceivedTime feeds a sink each record with its arrival set to its
// received_time: the archiver partitions by the record's received_time,
// the only arrival it can see, so a record whose received_time is damaged
// (before 2000) lands in its 1999 hour, outside any batch window, and
// the truth of a batch over the archive must not expect it.
type byReceivedTime struct{ gen.Sink }

func (s byReceivedTime) Record(r *gen.Record) error {
	c := *r
	c.Arrival = r.Event.ReceivedTime
	return s.Sink.Record(&c)
}

// recordSet is a multiset of event records by kind and Avro encoding.
type recordSet map[string]int

func recordKey(e *event.Event) string {
	return e.Kind.String() + ":" + string(event.AppendBinary(nil, e))
}

// Record counts one record as sent.
func (s recordSet) Record(r *gen.Record) error {
	s[recordKey(&r.Event)]++
	return nil
}

// DayDone does nothing.
func (s recordSet) DayDone(time.Time) error { return nil }

// archiveJunk is what produceForArchive adds besides the generated
// traffic, by the archiver's dead-letter reason.
var archiveJunk = map[string]int64{archive.ReasonUndecodable: 5, archive.ReasonKindMismatch: 1}

// produceForArchive generates cfg onto Kafka in arrival order, at rate
// events/s (0: as fast as Kafka takes them), followed by five undecodable
// messages and a crash on the handled_exception topic. It returns the
// truth of a batch over what the archiver must land, and the records sent.
func produceForArchive(t *testing.T, brokers []string, prefix string, cfg gen.Config, rate float64) (*gen.Truth, recordSet) {
	t.Helper()
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	defer p.Close()
	cfg.EnsureDefaults()
	tb := gen.NewTruthBuilder(cfg.Seed, cfg.AsOf(), cfg.WindowDays)
	sent := recordSet{}
	ctx := context.Background()
	ks := gen.NewKafkaSink(ctx, p, rate, false, gen.Tee{byReceivedTime{tb}, sent})
	start := time.Now()
	if err := gen.Generate(cfg, ks); err != nil {
		t.Error(err)
		return nil, nil
	}
	if err := ks.Close(); err != nil {
		t.Error(err)
		return nil, nil
	}
	for i := range archiveJunk[archive.ReasonUndecodable] {
		p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.AppLoad), nil, []byte(fmt.Sprintf("not avro %d", i)), cfg.Start)
	}
	crash := event.Event{Kind: event.Crash, AppID: "x", AppVersion: "1", Platform: "ios", DeviceID: []byte{1},
		EventTime: cfg.Start.UnixMilli(), ReceivedTime: cfg.Start.UnixMilli(), Signature: "s"}
	p.ProduceRaw(ctx, kafkaio.Topic(prefix, event.HandledException), nil, event.AppendSingle(nil, &crash), cfg.Start)
	if err := p.Flush(ctx); err != nil {
		t.Error(err)
		return nil, nil
	}
	t.Logf("produced %d records in %v", ks.Sent+6, time.Since(start).Round(time.Millisecond))
	return tb.Truth(), sent
}

func eventTopics(prefix string) []string {
	var ts []string
	for _, k := range event.Kinds {
		ts = append(ts, kafkaio.Topic(prefix, k))
	}
	return ts
}

// groupProgress returns, over every partition of the event topics, the
// group's committed offsets and the end offsets (committed -1: none).
func groupProgress(t *testing.T, brokers []string, group, prefix string) (committed, end map[string]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo, err := adm.ListEndOffsets(ctx, eventTopics(prefix)...)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	fo, err := adm.FetchOffsets(ctx, group)
	for kerr.IsRetriable(err) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		fo, err = adm.FetchOffsets(ctx, group)
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		t.Fatal(err)
	}
	committed, end = map[string]int64{}, map[string]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		k := fmt.Sprintf("%s/%d", o.Topic, o.Partition)
		end[k] = o.Offset
		committed[k] = -1
		if c, ok := fo.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			committed[k] = c.At
		}
	})
	return committed, end
}

// awaitCaughtUp waits until the group has committed every end offset.
func awaitCaughtUp(t *testing.T, brokers []string, group, prefix string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, e := groupProgress(t, brokers, group, prefix)
		lag := int64(0)
		for k, end := range e {
			lag += end - max(0, c[k])
		}
		if lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s still %d records behind after %v: committed %v, end %v", group, lag, within, c, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkArchive reads every raw and archiver dead-letter file under root
// and requires exactly the records sent, each once, each in the hour of
// its received_time and in a file named for its topic; and the junk as
// dead letters, each once.
func checkArchive(t *testing.T, root, prefix string, sent recordSet) {
	t.Helper()
	ctx := context.Background()
	files, err := avroio.ListPrefix(ctx, root+"/raw/")
	if err != nil {
		t.Fatal(err)
	}
	left := make(recordSet, len(sent))
	for k, n := range sent {
		left[k] = n
	}
	var records, extra int
	for _, f := range files {
		k, hour, err := avroio.ParseRawPath(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if topic, _, _, ok := archive.ParseObjectName(path.Base(f.Path)); !ok || topic != kafkaio.Topic(prefix, k) {
			t.Errorf("%s: not an archiver name of topic %s", f.Path, kafkaio.Topic(prefix, k))
		}
		for _, e := range readRawEvents(t, f.Path, k) {
			records++
			if !e.ReceivedAt().Truncate(time.Hour).Equal(hour) {
				t.Errorf("%s holds an event received at %s", f.Path, e.ReceivedAt())
			}
			key := recordKey(&e)
			if left[key] == 0 {
				if extra++; extra <= 5 {
					t.Errorf("%s: a record archived more often than sent (or never sent): %v", f.Path, e)
				}
				continue
			}
			left[key]--
		}
	}
	missing := 0
	for _, n := range left {
		missing += n
	}
	t.Logf("archive: %d records in %d raw files; %d missing, %d extra", records, len(files), missing, extra)
	if missing != 0 || extra != 0 {
		t.Errorf("archive: %d records missing and %d extra (duplicates)", missing, extra)
	}

	dl, err := avroio.ListPrefix(ctx, root+"/deadletter/archive/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	seen := map[string]bool{}
	for _, f := range dl {
		recs, err := avroio.ReadDeadLetters(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got[r.Reason]++
			at := fmt.Sprintf("%s@%d", r.Source, r.Offset)
			if seen[at] || r.Pipeline != "archive" || len(r.Payload) == 0 {
				t.Errorf("dead letter %v: twice, or without its context", r)
			}
			seen[at] = true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(archiveJunk) {
		t.Errorf("archiver dead letters %v, want %v", got, archiveJunk)
	}
}

func readRawEvents(t *testing.T, p string, k event.Kind) []event.Event {
	t.Helper()
	rc, err := avroio.OpenRange(context.Background(), p, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := goavro.NewOCFReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	var out []event.Event
	for r.Scan() {
		v, err := r.Read()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		e, err := event.FromNative(k, v)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, e)
	}
	return out
}

// batchOverArchive runs the batch over the archive and compares the store
// with the truth, exactly.
func batchOverArchive(t *testing.T, root string, s3 s3fs.Options, cfg gen.Config, tr *gen.Truth) {
	t.Helper()
	store := sqliteURL(t)
	start := time.Now()
	runBatch(t, "prism", pipelines.BatchConfig{Input: root, AsOf: cfg.AsOf(), WindowDays: cfg.WindowDays, Store: store,
		DeadLetterRoot: t.TempDir(), S3: s3})
	t.Logf("batch over the archive: %v", time.Since(start).Round(time.Millisecond))
	checkAgainstTruth(t, openStore(t, store), tr)
}

// TestArchiveEndToEnd: generated traffic (late offline devices, skewed
// clocks, too-old and damaged records, undecodable messages) goes onto
// Kafka with 3 partitions, the archiver lands it as raw files, locally, on
// gofakes3 and (with LUMEN_TEST_S3) on moto, and the batch over each
// archive equals the ground truth exactly; every record sent is archived
// exactly once, and the junk is dead-lettered.
func TestArchiveEndToEnd(t *testing.T) {
	brokers, prefix := kafkaCluster(t, 3)
	cfg := archiveGenConfig(41)
	tr, sent := produceForArchive(t, brokers, prefix, cfg, 0)
	if t.Failed() {
		return
	}
	if tr.Counters.TooOld == 0 || tr.Counters.ClockSkew == 0 || len(tr.Counters.DeadLetters) == 0 {
		t.Fatalf("the traffic does not exercise the cases: %+v", tr.Counters)
	}
	for _, out := range []string{"local", "gofakes3", "moto"} {
		t.Run(out, func(t *testing.T) {
			root := t.TempDir()
			var s3 s3fs.Options
			switch out {
			case "gofakes3":
				e := s3test.Fake(t)
				s3, root = e.Options, e.Root("lake")
			case "moto":
				e := s3test.Moto(t)
				s3, root = e.Options, e.Root("lake")
			}
			group := prefix + "archive-" + out
			a, err := archive.New(archive.Config{Brokers: brokers, TopicPrefix: prefix, Group: group, Output: root, S3: s3,
				Codec: avroio.CodecSnappy, RollRecords: 2_000, RollInterval: 500 * time.Millisecond, ProgressInterval: -1,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- a.Run(ctx) }()
			awaitCaughtUp(t, brokers, group, prefix, time.Minute)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			s := a.Stats()
			t.Logf("archived %d records into %d files (%.1f MiB) in %v; dead letters %v", s.Archived, s.Files,
				float64(s.Bytes)/(1<<20), time.Since(start).Round(time.Millisecond), s.DeadLetters)
			if fmt.Sprint(s.DeadLetters) != fmt.Sprint(archiveJunk) || s.Archived+6 != s.Consumed {
				t.Errorf("stats: %+v", s)
			}
			checkArchive(t, root, prefix, sent)
			batchOverArchive(t, root, s3, cfg, tr)
		})
	}
}

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
	brokers, prefix := kafkaCluster(t, 3)
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
		"--roll_interval=300ms", "--progress_interval=1s"}

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
	awaitCaughtUp(t, brokers, group, prefix, time.Minute)
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
	files, err := avroio.ListPrefix(context.Background(), root+"/raw/")
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
			fk := fileKey{avroio.RawHourDir(root, kind, e.ReceivedAt().Truncate(time.Hour)), archive.ObjectName(r.Topic, r.Partition, first)}
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
		out, err := avroio.Create(context.Background(), k.dir+"/"+k.name)
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
