package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/testing/avrotest"
)

var hour0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// ev is a valid event of kind k received at `at`. Its fields have fixed
// widths, so every message of one kind has the same size.
func ev(k event.Kind, i int, at time.Time) event.Event {
	e := event.Event{Kind: k, AppID: "com.example.app", AppVersion: "1.0.0", Platform: "ios",
		DeviceID: []byte(fmt.Sprintf("device-%06d", i)), EventTime: at.UnixMilli() - 1000, ReceivedTime: at.UnixMilli()}
	if k.HasSignature() {
		e.Signature = "sig"
	}
	return e
}

// message is one Kafka record to produce.
type message struct {
	topic     string
	partition int32
	value     []byte
	ts        time.Time
}

func eventMessage(prefix string, partition int32, e event.Event) message {
	return message{kafkaio.Topic(prefix, e.Kind), partition, event.AppendSingle(nil, &e), e.ReceivedAt()}
}

// produce writes messages in order, synchronously, each to its partition.
func produce(t *testing.T, brokers []string, msgs ...message) {
	t.Helper()
	c, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rs []*kgo.Record
	for _, m := range msgs {
		rs = append(rs, &kgo.Record{Topic: m.topic, Partition: m.partition, Value: m.value, Timestamp: m.ts})
	}
	if err := c.ProduceSync(context.Background(), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// testConfig is a config for a test: its own group, fast heartbeats, and
// rolls only when the test says so.
func testConfig(t *testing.T, brokers []string, prefix, root string) Config {
	return Config{
		Brokers: brokers, TopicPrefix: prefix, Group: "g-" + prefix, Output: root, Codec: avroio.CodecSnappy,
		RollRecords: 1 << 40, RollBytes: 1 << 40, RollInterval: time.Hour, SessionTimeout: 10 * time.Second,
		ProgressInterval: -1, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		KafkaOptions: []kgo.Opt{kgo.HeartbeatInterval(300 * time.Millisecond)},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// running is an Archiver running in the background.
type running struct {
	*Archiver
	cancel context.CancelFunc
	done   chan error
	err    atomic.Pointer[error]
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Archiver: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
		}
	})
	return r
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute")
		return nil
	}
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// committed returns the group's committed offset of a partition, -1 if none.
func committed(t *testing.T, brokers []string, group, topic string, partition int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	for kerr.IsRetriable(err) && ctx.Err() == nil { // a real coordinator may still be loading
		time.Sleep(100 * time.Millisecond)
		os, err = kadm.NewClient(cl).FetchOffsets(ctx, group)
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := os.Lookup(topic, partition); ok && o.Err == nil {
		return o.At
	}
	return -1
}

// commit sets the group's offset of a partition, as an earlier archiver
// would have.
func commit(t *testing.T, brokers []string, group, topic string, partition int32, at int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: partition, At: at, LeaderEpoch: -1})
	resp, err := kadm.NewClient(cl).CommitOffsets(context.Background(), group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// rawFiles lists the archive's raw files, by path relative to root/raw.
func rawFiles(t *testing.T, root string) map[string][]event.Event {
	t.Helper()
	files, err := blob.ListPrefix(context.Background(), root+"/raw/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]event.Event{}
	for _, f := range files {
		k, hour, err := raw.ParsePath(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		evs := avrotest.ReadEvents(t, f.Path, k)
		for _, e := range evs {
			if got := e.ReceivedAt().Truncate(time.Hour); !got.Equal(hour) {
				t.Errorf("%s holds an event received at %s", f.Path, e.ReceivedAt())
			}
		}
		rel := strings.TrimPrefix(f.Path, root+"/raw/")
		out[rel] = evs
	}
	return out
}

// names returns the sorted base names of files.
func names(files map[string][]event.Event) []string {
	var out []string
	for p := range files {
		out = append(out, path.Base(p))
	}
	slices.Sort(out)
	return out
}

func hourDir(k event.Kind, at time.Time) string {
	return fmt.Sprintf("%s/dt=%s/hr=%02d", k, at.UTC().Format(time.DateOnly), at.UTC().Hour())
}
