package archive

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// Metrics renders the Archiver's Stats for /metrics: records consumed,
// dead letters by reason, and what the open segments hold uncommitted,
// which a stop makes durable (zero after it).
func TestMetrics(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 1)
	var msgs []message
	for i := range 40 {
		msgs = append(msgs, eventMessage(prefix, 0, ev(event.AppLoad, i, hour0)))
	}
	size := len(msgs[0].value)
	msgs = append(msgs, message{msgs[0].topic, 0, []byte("not avro"), hour0}, message{msgs[0].topic, 0, []byte("nor this"), hour0})
	produce(t, brokers, msgs...)
	cfg := testConfig(t, brokers, prefix, t.TempDir())
	a := start(t, cfg)
	m := Metrics{A: a.Archiver}
	waitFor(t, "42 records consumed", func() bool { return a.Stats().Consumed == 42 })

	// Nothing has rolled: the 40 events wait in an open segment.
	want := `
# HELP lumen_archive_consumed_total Records taken from Kafka, archived or not.
# TYPE lumen_archive_consumed_total counter
lumen_archive_consumed_total 42
# HELP lumen_archive_dead_letters_total Records that could not be archived, by reason.
# TYPE lumen_archive_dead_letters_total counter
lumen_archive_dead_letters_total{reason="undecodable"} 2
# HELP lumen_archive_files_total Raw files made durable.
# TYPE lumen_archive_files_total counter
lumen_archive_files_total 0
# HELP lumen_archive_uncommitted_records Records read into open segments, not yet durable.
# TYPE lumen_archive_uncommitted_records gauge
lumen_archive_uncommitted_records 42
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "lumen_archive_consumed_total", "lumen_archive_dead_letters_total",
		"lumen_archive_files_total", "lumen_archive_uncommitted_records"); err != nil {
		t.Error(err)
	}
	if got := a.Stats().UncommittedBytes; got != int64(40*size+len("not avro")+len("nor this")) {
		t.Errorf("uncommitted bytes %d, want %d", got, 40*size+16)
	}

	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	want = `
# HELP lumen_archive_archived_total Records in raw files made durable.
# TYPE lumen_archive_archived_total counter
lumen_archive_archived_total 40
# HELP lumen_archive_uncommitted_bytes Record bytes read into open segments, not yet durable: read again after a crash.
# TYPE lumen_archive_uncommitted_bytes gauge
lumen_archive_uncommitted_bytes 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "lumen_archive_archived_total", "lumen_archive_uncommitted_bytes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m); n != 14 {
		t.Errorf("%d metrics, want 14: one per descriptor, with one dead-letter reason", n)
	}
}
