package kafkaio

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/io/deadletter"
)

// counters sums a pipeline's user counters by name.
func counters(res beam.PipelineResult) map[string]int64 {
	out := map[string]int64{}
	if res == nil {
		return out
	}
	for _, c := range res.Metrics().AllMetrics().Counters() {
		out[c.Key.Namespace+"/"+c.Key.Name] += c.Result()
	}
	return out
}

// decodeDeadLetter decodes a dead letter as any Avro consumer would.
func decodeDeadLetter(b []byte) (deadletter.Record, error) {
	if len(b) < 10 || b[0] != 0xC3 || b[1] != 0x01 {
		return deadletter.Record{}, fmt.Errorf("not single-object encoded")
	}
	codec, err := goavro.NewCodec(deadletter.Schema)
	if err != nil {
		return deadletter.Record{}, err
	}
	native, _, err := codec.NativeFromBinary(b[10:])
	if err != nil {
		return deadletter.Record{}, err
	}
	return deadletter.FromNative(native)
}

// A dead letter over the broker's message limit (an invalid event whose
// payload and detail are 700 KB each) is truncated to fit, keeping its
// reason, source and offset and the start of its payload; the dead
// letters after it are sent as they are, and the pipeline succeeds.
func TestOversizedDeadLetterIsTruncated(t *testing.T) {
	_, brokers := cluster(t, 1)
	ctx := context.Background()
	if _, err := kadm.NewClient(kgoClient(t, brokers)).CreateTopic(ctx, 1, 1, nil, DeadLetterTopic(prefix)); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("p"), 700_000)
	recs := []deadletter.Record{
		{Pipeline: "stream", Source: "lumen.crash/0", Offset: 41, Index: -1, Lost: 1, Reason: "empty_app_id", Detail: strings.Repeat("d", 700_000), Payload: big},
	}
	for i := 0; i < 3; i++ {
		recs = append(recs, deadletter.Record{Pipeline: "stream", Source: "lumen.crash/0", Offset: int64(42 + i), Index: -1, Lost: 1,
			Reason: "undecodable", Detail: "x", Payload: []byte(fmt.Sprint("junk ", i))})
	}
	p, s := beam.NewPipelineWithRoot()
	WriteDeadLetters(s, brokers, Security{}, prefix, beam.CreateList(s, recs))
	res := ptest.RunAndValidate(t, p)

	got := readDeadLetterTopic(t, brokers, len(recs))
	if len(got) != len(recs) {
		t.Fatalf("%d dead letters on the topic, want %d", len(got), len(recs))
	}
	for _, r := range recs {
		d, ok := got[r.Offset]
		switch {
		case !ok:
			t.Errorf("dead letter of offset %d missing", r.Offset)
		case d.Reason != r.Reason || d.Source != r.Source || d.Pipeline != r.Pipeline:
			t.Errorf("offset %d: got %s %s %s, want %s %s %s", r.Offset, d.Pipeline, d.Source, d.Reason, r.Pipeline, r.Source, r.Reason)
		case !bytes.HasPrefix(r.Payload, d.Payload) || !strings.HasPrefix(r.Detail, strings.SplitN(d.Detail, " [truncated", 2)[0]):
			t.Errorf("offset %d: payload or detail is not a prefix of the original", r.Offset)
		}
	}
	if d := got[41]; len(d.Payload) < 800_000-700_000/2 || !strings.Contains(d.Detail, "truncated") {
		t.Errorf("oversized dead letter kept %d payload bytes, detail %.80q…: want most of the payload and a note", len(d.Payload), d.Detail)
	}
	if d := got[42]; string(d.Payload) != "junk 0" || d.Detail != "x" {
		t.Errorf("a small dead letter was changed: %+v", d)
	}
	c := counters(res)
	if c["lumen.kafka/deadletter_truncated_empty_app_id"] != 1 {
		t.Errorf("counters %v, want deadletter_truncated_empty_app_id=1", c)
	}
}

// A dead-letter topic that does not exist (on a broker that does not
// create topics) costs the pipeline nothing: the dead letters are counted
// as failed sends, and the pipeline succeeds.
func TestMissingDeadLetterTopicIsCounted(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var recs []deadletter.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, deadletter.Record{Pipeline: "stream", Source: "lumen.app_load/0", Offset: int64(i), Index: -1, Lost: 1,
			Reason: "undecodable", Detail: "x", Payload: []byte("junk")})
	}
	p, s := beam.NewPipelineWithRoot()
	WriteDeadLetters(s, c.ListenAddrs(), Security{}, prefix, beam.CreateList(s, recs))
	res := ptest.RunAndValidate(t, p)
	if n := counters(res)["lumen.kafka/deadletter_send_failed_undecodable"]; n != int64(len(recs)) {
		t.Errorf("deadletter_send_failed_undecodable = %d, want %d (counters %v)", n, len(recs), counters(res))
	}
}

// readDeadLetterTopic reads n dead letters, by their offset.
func readDeadLetterTopic(t *testing.T, brokers []string, n int) map[int64]deadletter.Record {
	t.Helper()
	cl := kgoClient(t, brokers)
	cl.AddConsumeTopics(DeadLetterTopic(prefix))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[int64]deadletter.Record{}
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			d, err := decodeDeadLetter(r.Value)
			if err != nil {
				t.Errorf("dead letter at %d: %v", r.Offset, err)
				return
			}
			got[d.Offset] = d
		})
	}
	return got
}
