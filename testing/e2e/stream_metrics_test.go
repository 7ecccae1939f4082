package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// TestStreamMetrics: cmd/stream, built, serves /metrics (--metrics_addr)
// with what an operator alerts on, read from the job's runner: every
// record read, per kind; the dead letters by reason; the late events;
// each partition's lag, which reaches 0 once the backlog is read; and the
// age of the newest stored speed row. The numbers are checked against the
// generator's truth and the store, and no label names an app.
func TestStreamMetrics(t *testing.T) {
	bin := command(t, "stream")
	brokers, prefix := kafkatest.Cluster(t, 2)
	cfg := gen.Config{Seed: 1210, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Days: 2,
		Events: 30_000, Apps: 5, OfflineShare: 0.1, InvalidShare: 0.003}
	tr := produce(t, brokers, prefix, cfg, false, 0, "")
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p.ProduceRaw(context.Background(), kafkaio.Topic(prefix, event.Crash), nil, []byte(fmt.Sprintf("not avro %d", i)), time.Now())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	store := sqliteURL(t)
	st := openStore(t, store)
	stream := startProcess(t, "stream", baseEnv(t), bin, "--brokers="+strings.Join(brokers, ","), "--topic_prefix="+prefix,
		"--start=earliest", "--store="+store, "--refresh=0", "--for=10m", "--metrics_addr=127.0.0.1:0")
	defer stream.stop(t)
	url := stream.await(t, regexp.MustCompile(`stream: metrics at (http://\S+/metrics)`), time.Minute)
	awaitSpeedTotals(t, st, tr, stream, 5*time.Minute)

	// The lag gauges reach 0 once every reader has polled at the end.
	var fams map[string]*dto.MetricFamily
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		fams = scrape(t, url)
		lags := fams["lumen_stream_kafka_lag"].GetMetric()
		caughtUp := len(lags) == 3*2
		for _, m := range lags {
			caughtUp = caughtUp && m.GetGauge().GetValue() == 0
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag gauges %v: want 6 partitions at 0", lags)
		}
	}
	if up := fams["lumen_stream_job_up"].GetMetric(); len(up) != 1 || up[0].GetGauge().GetValue() != 1 {
		t.Errorf("lumen_stream_job_up = %v, want 1", up)
	}
	sumOf := func(name string) (total int64, kinds map[string]int64) {
		kinds = map[string]int64{}
		for _, m := range fams[name].GetMetric() {
			v := int64(m.GetCounter().GetValue())
			total += v
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" {
					kinds[l.GetValue()] += v
				}
			}
		}
		return total, kinds
	}
	invalid := int64(3)
	wantDead := map[string]int64{"undecodable": 3}
	for r, n := range tr.Invalid {
		invalid += n
		wantDead[r] += n
	}
	if read, kinds := sumOf("lumen_kafka_records_read_total"); read != tr.Valid+invalid || len(kinds) != 3 {
		t.Errorf("records read %d over kinds %v, want %d (%d valid, %d not) over the 3 kinds", read, kinds, tr.Valid+invalid, tr.Valid, invalid)
	}
	for reason, want := range wantDead {
		if got, _ := sumOf("lumen_kafka_deadletter_" + reason + "_total"); got != want {
			t.Errorf("dead letters %s: %d, want %d", reason, got, want)
		}
	}
	_, late, _ := speedState(t, st, tr)
	var stored int64
	for k, n := range late {
		if k.Gran == "minute" && k.Version == aggregate.AllVersions {
			stored += n
		}
	}
	if got, _ := sumOf("lumen_stream_late_dropped_total"); got != stored || got == 0 {
		t.Errorf("late dropped %d, the store's late rows hold %d (want equal, and some)", got, stored)
	}
	if age := fams["lumen_stream_speed_row_age_seconds"].GetMetric(); len(age) != 1 || age[0].GetGauge().GetValue() < 0 ||
		age[0].GetGauge().GetValue() > 600 {
		t.Errorf("lumen_stream_speed_row_age_seconds = %v, want one value within the run", age)
	}
	read, kinds := sumOf("lumen_kafka_records_read_total")
	lateN, _ := sumOf("lumen_stream_late_dropped_total")
	t.Logf("/metrics: %d records read %v, %d late, lag 0 on 6 partitions, newest speed row %.1f s old",
		read, kinds, lateN, fams["lumen_stream_speed_row_age_seconds"].GetMetric()[0].GetGauge().GetValue())
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" || strings.HasPrefix(l.GetValue(), "com.") {
					t.Errorf("%s has a label of an app: %v", name, m.GetLabel())
				}
			}
		}
	}
}

// scrape reads a Prometheus text endpoint.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return fams
}
