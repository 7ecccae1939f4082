package archive

import "github.com/prometheus/client_golang/prometheus"

// Metrics is a Prometheus collector of an Archiver's Stats, read at each
// scrape; cmd/archive serves it at /metrics. Labels are bounded: dead
// letters by reason.
type Metrics struct{ A *Archiver }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("lumen_archive_"+name, help, labels, nil)
}

var (
	consumedDesc    = desc("consumed_total", "Records taken from Kafka, archived or not.")
	archivedDesc    = desc("archived_total", "Records in raw files made durable.")
	filesDesc       = desc("files_total", "Raw files made durable.")
	bytesDesc       = desc("bytes_total", "Bytes of the raw files made durable.")
	commitsDesc     = desc("commits_total", "Offset commits that succeeded.")
	commitErrDesc   = desc("commit_errors_total", "Offset commits that failed (retried).")
	deadDesc        = desc("dead_letters_total", "Records that could not be archived, by reason.", "reason")
	sealsDesc       = desc("seals_total", "Arrival hours sealed.")
	sealErrDesc     = desc("seal_errors_total", "Sealing attempts that failed (retried).")
	afterSealDesc   = desc("archived_after_seal_total", "Records written into an hour already sealed (later than --seal_delay).")
	lagDesc         = desc("lag", "Records behind the high watermarks of the assigned partitions, as of the last fetch.")
	partitionsDesc  = desc("partitions", "Partitions assigned.")
	uncommittedDesc = desc("uncommitted_bytes", "Record bytes read into open segments, not yet durable: read again after a crash.")
	uncommRecDesc   = desc("uncommitted_records", "Records read into open segments, not yet durable.")
)

// Describe sends the descriptors.
func (m Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{consumedDesc, archivedDesc, filesDesc, bytesDesc, commitsDesc, commitErrDesc, deadDesc,
		sealsDesc, sealErrDesc, afterSealDesc, lagDesc, partitionsDesc, uncommittedDesc, uncommRecDesc} {
		ch <- d
	}
}

// Collect sends a snapshot of the Stats.
func (m Metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.A.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(consumedDesc, s.Consumed)
	counter(archivedDesc, s.Archived)
	counter(filesDesc, s.Files)
	counter(bytesDesc, s.Bytes)
	counter(commitsDesc, s.Commits)
	counter(commitErrDesc, s.CommitErrors)
	for reason, n := range s.DeadLetters {
		counter(deadDesc, n, reason)
	}
	counter(sealsDesc, s.Seals)
	counter(sealErrDesc, s.SealErrors)
	counter(afterSealDesc, s.ArchivedAfterSeal)
	gauge(lagDesc, s.Lag)
	gauge(partitionsDesc, int64(s.Partitions))
	gauge(uncommittedDesc, s.UncommittedBytes)
	gauge(uncommRecDesc, s.UncommittedRecords)
}
