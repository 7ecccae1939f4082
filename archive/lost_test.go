package archive

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// A member whose partitions are taken without a revoke (here: a second
// process with the same static instance id fences it) drops its open
// segments: it writes and commits nothing of them, and the new owner
// archives every record exactly once.
func TestLostPartitionsAreDropped(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	topic := kafkaio.Topic(prefix, event.AppLoad)
	var msgs []message
	for i := range 30 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, hour0)))
	}
	produce(t, brokers, msgs...)
	root := t.TempDir()
	cfg := testConfig(t, brokers, prefix, root)
	cfg.InstanceID = "archive-0"
	a := start(t, cfg)
	waitFor(t, "A consumed everything", func() bool { return a.Stats().Consumed == 30 })
	b := start(t, cfg)
	if err := a.wait(t); !errors.Is(err, kerr.FencedInstanceID) {
		t.Errorf("the fenced member's Run returned %v, want FENCED_INSTANCE_ID", err)
	}
	waitFor(t, "B consumed everything", func() bool { return b.Stats().Consumed == 30 })
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Files != 0 || s.Commits != 0 {
		t.Errorf("the fenced member wrote or committed: %+v", s)
	}
	var n int
	for _, evs := range rawFiles(t, root) {
		n += len(evs)
	}
	if c := committed(t, brokers, cfg.Group, topic, 0); n != 30 || c != 30 {
		t.Errorf("%d records archived, committed %d; want 30 and 30", n, c)
	}
}
