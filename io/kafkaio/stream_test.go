package kafkaio

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/window"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/typex"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/stats"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/lumenhq/lumen/event"
)

func init() {
	register.Function2x0(recordWindow)
	register.Function1x2(deviceKey)
}

var (
	winMu   sync.Mutex
	windows = map[time.Time]int{}
	devices = map[string]bool{}
)

func deviceKey(e event.Event) (string, int) { return string(e.DeviceID), 1 }

func recordWindow(w typex.Window, n int) {
	winMu.Lock()
	defer winMu.Unlock()
	windows[w.MaxTimestamp().ToTime().UTC().Truncate(time.Minute)] += n
}

// An unbounded read on prism: with one partition busy and one idle, the
// watermark advances with the busy one's event time, so minute windows
// fire; a partition added while running is found and read from its start.
func TestUnboundedReadOnPrism(t *testing.T) {
	_, brokers := cluster(t, 2)
	topic := Topic(prefix, event.AppLoad)
	var evs []event.Event
	for i := 0; i < 600; i++ { // ten minutes of event time on partition 0
		evs = append(evs, ev(event.AppLoad, i, t0.Add(time.Duration(i)*time.Second)))
	}
	produceTo(t, brokers, 0, evs)

	p, s := beam.NewPipelineWithRoot()
	events, _, _ := Read(s, ReadConfig{Brokers: brokers, Topics: []string{topic}, Start: StartEarliest,
		DiscoveryInterval: 300 * time.Millisecond}, prefix)
	counts := stats.SumPerKey(s, beam.WindowInto(s, window.NewFixedWindows(time.Minute), beam.ParDo(s, keyOne, events)))
	beam.ParDo0(s, recordWindowKV, counts)
	beam.ParDo0(s, recordDevice, events)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := prism.Execute(ctx, p); done <- err }()

	// Minutes 0..7 close: the watermark is the newest event (minute 9:59)
	// minus 2 minutes, and the idle partition does not hold it back.
	waitFor(t, 20*time.Second, "minute windows 0-7 to fire", func() bool {
		winMu.Lock()
		defer winMu.Unlock()
		for m := 0; m < 8; m++ {
			if windows[t0.Add(time.Duration(m)*time.Minute)] != 60 {
				return false
			}
		}
		return true
	})
	// Add a partition and write to it: the reader discovers it.
	if _, err := kadm.NewClient(kgoClient(t, brokers)).CreatePartitions(ctx, 1, topic); err != nil {
		t.Fatal(err)
	}
	late := ev(event.AppLoad, 9999, t0.Add(20*time.Minute))
	produceTo(t, brokers, 2, []event.Event{late})
	waitFor(t, 60*time.Second, "the new partition's record", func() bool {
		winMu.Lock()
		defer winMu.Unlock()
		return devices[string(late.DeviceID)]
	})
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("the streaming job did not stop on cancel")
	}
}

func keyOne(e event.Event) (string, int) { return "all", 1 }

func recordWindowKV(w typex.Window, _ string, n int) { recordWindow(w, n) }

func recordDevice(e event.Event) {
	winMu.Lock()
	devices[string(e.DeviceID)] = true
	winMu.Unlock()
}

func init() {
	register.Function1x2(keyOne)
	register.Function3x0(recordWindowKV)
	register.Function1x0(recordDevice)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			winMu.Lock()
			t.Fatalf("timed out waiting for %s; windows so far: %v; %d devices seen", what, windows, len(devices))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
