package launch

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/metrics"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/runtime/metricsx"
	jobpb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/jobmanagement_v1"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/util/grpcx"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
)

// StreamMetrics is a Prometheus collector of a running stream: at every
// scrape it reads the job's metrics from its runner through Beam's Job API
// (GetJobs, GetJobMetrics), the same way on prism in process, a prism job
// service, and the Flink and Spark job servers, and renders them:
//
//   - every Beam counter of a lumen namespace, summed over the steps, as
//     lumen_<namespace>_<metric>_total, with a kind label where the
//     counter is per kind ("<metric>/<kind>"): events read, late, dead
//     letters by reason, rows stored;
//   - lumen_stream_kafka_lag{topic,partition}: the records of each
//     partition not yet read, as of its reader's last poll;
//   - lumen_stream_speed_row_age_seconds: how long ago speed rows last
//     reached the store;
//   - lumen_stream_job_up: 1 while the job is found running, else 0.
//
// Labels are bounded: kinds, reasons and partitions, never apps.
type StreamMetrics struct {
	// Endpoint returns the job service's address (an in-process prism sets
	// it once the job is submitted); "" while there is none.
	Endpoint func() string
	// JobName is the job's name in the runner (--job_name).
	JobName string
	// Timeout bounds one scrape's calls to the job service. Default 5 s.
	Timeout time.Duration

	mu   sync.Mutex
	conn *grpc.ClientConn
	addr string
}

var (
	jobUpDesc = prometheus.NewDesc("lumen_stream_job_up",
		"1 while the stream's job is found running on its job service, else 0.", nil, nil)
	lagDesc = prometheus.NewDesc("lumen_stream_kafka_lag",
		"Records of a partition not yet read by the stream, as of its reader's last poll.", []string{"topic", "partition"}, nil)
	ageDesc = prometheus.NewDesc("lumen_stream_speed_row_age_seconds",
		"Seconds since speed rows last reached the store.", nil, nil)
)

// Describe sends nothing: the Beam counters are only known once the job
// runs, so this is an unchecked collector.
func (m *StreamMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect reads the job's metrics and sends them.
func (m *StreamMetrics) Collect(ch chan<- prometheus.Metric) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := m.read(ctx)
	if err != nil {
		slog.Warn("launch: /metrics: reading the job's metrics", "err", err)
	}
	if res == nil {
		ch <- prometheus.MustNewConstMetric(jobUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(jobUpDesc, prometheus.GaugeValue, 1)
	for _, c := range SumCounters(res) {
		desc := prometheus.NewDesc(c.Name, "Beam counter "+c.Namespace+" "+c.Metric+", summed over the job's steps.", c.labelNames(), nil)
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(c.Value), c.labelValues()...)
	}
	lags, stored := gauges(res)
	for tp, lag := range lags {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), tp[0], tp[1])
	}
	if !stored.IsZero() {
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(stored).Seconds())
	}
}

// read returns the metrics of the newest job named m.JobName, or nil if
// there is none yet.
func (m *StreamMetrics) read(ctx context.Context) (*metrics.Results, error) {
	addr := m.Endpoint()
	if addr == "" {
		return nil, nil
	}
	client, err := m.client(ctx, addr)
	if err != nil {
		return nil, err
	}
	jobs, err := client.GetJobs(ctx, &jobpb.GetJobsRequest{})
	if err != nil {
		return nil, fmt.Errorf("job service %s: list jobs: %w", addr, err)
	}
	id := ""
	for _, j := range jobs.GetJobInfo() {
		if j.GetJobName() == m.JobName && !JobEnded(j.GetState()) {
			id = j.GetJobId()
		}
	}
	if id == "" {
		return nil, nil
	}
	resp, err := client.GetJobMetrics(ctx, &jobpb.GetJobMetricsRequest{JobId: id})
	if err != nil {
		return nil, fmt.Errorf("job service %s: metrics of %s: %w", addr, id, err)
	}
	return metricsx.FromMonitoringInfos(nil, resp.GetMetrics().GetAttempted(), resp.GetMetrics().GetCommitted()), nil
}

func (m *StreamMetrics) client(ctx context.Context, addr string) (jobpb.JobServiceClient, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil || m.addr != addr {
		if m.conn != nil {
			m.conn.Close()
		}
		cc, err := grpcx.DefaultDial(ctx, addr, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("job service %s: %w", addr, err)
		}
		m.conn, m.addr = cc, addr
	}
	return jobpb.NewJobServiceClient(m.conn), nil
}

// Close closes the connection to the job service.
func (m *StreamMetrics) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn == nil {
		return nil
	}
	err := m.conn.Close()
	m.conn = nil
	return err
}

// Counter is one Beam counter of a lumen namespace, summed over a job's
// steps, with its Prometheus name.
type Counter struct {
	Namespace, Metric string // the Beam counter is Metric or Metric/Kind
	Kind              string // "" if the counter is not per kind
	Name              string // lumen_<namespace>_<metric>_total
	Value             int64
}

func (c Counter) labelNames() []string {
	if c.Kind == "" {
		return nil
	}
	return []string{"kind"}
}

func (c Counter) labelValues() []string {
	if c.Kind == "" {
		return nil
	}
	return []string{c.Kind}
}

// SumCounters sums the counters of lumen's namespaces over the steps of
// res (committed values, or attempted ones where a runner commits none),
// sorted by name and kind.
func SumCounters(res *metrics.Results) []Counter {
	sums := map[[3]string]int64{}
	for _, c := range res.AllMetrics().Counters() {
		ns, name := c.Key.Namespace, c.Key.Name
		if !strings.HasPrefix(ns, "lumen.") {
			continue
		}
		metric, kind, _ := strings.Cut(name, "/")
		sums[[3]string{ns, metric, kind}] += c.Result()
	}
	out := make([]Counter, 0, len(sums))
	for k, v := range sums {
		out = append(out, Counter{Namespace: k[0], Metric: k[1], Kind: k[2], Value: v,
			Name: promName(k[0]) + "_" + promName(k[1]) + "_total"})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// promName makes a Beam namespace or name a Prometheus name part:
// anything but letters, digits and '_' becomes '_'.
func promName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// gauges returns the readers' lag per [topic, partition] and when speed
// rows were last stored (zero if never).
func gauges(res *metrics.Results) (map[[2]string]int64, time.Time) {
	lags := map[[2]string]int64{}
	newest := map[[2]string]metrics.GaugeValue{}
	var stored int64
	for _, g := range res.AllMetrics().Gauges() {
		v := g.Result()
		switch g.Key.Namespace {
		case kafkaio.LagGauge:
			topic, part, ok := cutLast(g.Key.Name, "/")
			if !ok {
				continue
			}
			k := [2]string{topic, part}
			// The same partition's gauge may come from several steps
			// (bundles on several workers): the newest report wins.
			if prev, seen := newest[k]; !seen || v.Timestamp.After(prev.Timestamp) {
				newest[k], lags[k] = v, v.Value
			}
		case pipelines.StoredGauge:
			stored = max(stored, v.Value)
		}
	}
	if stored == 0 {
		return lags, time.Time{}
	}
	return lags, time.UnixMilli(stored)
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
