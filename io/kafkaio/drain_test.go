package kafkaio

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/lumenhq/lumen/event"
)

// A drained unbounded read ends by itself, and everything it read reaches
// the outputs: the minute windows the watermark had not closed yet fire
// too (they would be lost by a cancel). Then CommitDrained commits the
// offset each partition ended at, the empty one's too.
func TestDrain(t *testing.T) {
	_, brokers := cluster(t, 2)
	topic := Topic(prefix, event.AppLoad)
	var evs []event.Event
	for i := 0; i < 600; i++ { // ten minutes of event time on partition 0
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)
	dir := t.TempDir()
	group := fmt.Sprintf("drain-%d", time.Now().UnixNano())

	p, s := beam.NewPipelineWithRoot()
	events, _, _ := Read(s, ReadConfig{Brokers: brokers, Topics: []string{topic}, Start: StartEarliest,
		Group: group, CommitOffsets: true, DiscoveryInterval: 300 * time.Millisecond}, prefix)
	counts := stats.SumPerKey(s, beam.WindowInto(s, window.NewFixedWindows(time.Minute), beam.ParDo(s, keyAll, events)))
	beam.ParDo0(s, &fileSinkFn{Dir: dir}, counts)
	beam.ParDo0(s, &deviceFileFn{Dir: dir}, events)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := prism.Execute(ctx, p); done <- err }()

	waitFor(t, time.Minute, "every record read", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "device-*"))
		return len(files) == len(evs)
	})
	committed := func() int64 {
		t.Helper()
		offs, err := kadm.NewClient(kgoClient(t, brokers)).FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := offs.Lookup(topic, 0)
		if !ok {
			return -1
		}
		return o.At
	}
	Drain()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the drained job: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the drained job did not finish within 2 minutes")
	}
	windows := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "window-*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var n int
		fmt.Sscan(string(b), &n)
		windows[strings.Split(filepath.Base(f), "-")[1]] += n
	}
	for m := 0; m < 10; m++ {
		if minute := t0.Add(time.Duration(m) * time.Minute).Format("1504"); windows[minute] != 60 {
			t.Errorf("minute %s: %d events, want 60 (windows %v)", minute, windows[minute], windows)
		}
	}
	ends, n, err := CommitDrained(ctx)
	if err != nil || n != 2 {
		t.Errorf("CommitDrained: %d partitions, %v; want both partitions", n, err)
	}
	if sum := ends[topic+"/0"] + ends[topic+"/1"]; len(ends) != 2 || sum != int64(len(evs)) {
		t.Errorf("drained readers stopped at %v, want both partitions, %d records in all", ends, len(evs))
	}
	if at := committed(); at != int64(len(evs)) {
		t.Errorf("committed offset %d after the drain, want %d", at, len(evs))
	}
}
