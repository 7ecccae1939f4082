package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// TestStreamReplayHistory is what an operator does after an outage: the
// topics hold weeks-old events (several partitions of several topics, each
// in event-time order), and the stream is started from the earliest
// offset. Nothing is behind the watermark, so every event must be counted,
// per minute, hour and day, and none may be late. Then the stream is
// stopped, more history arrives while it is down, and it resumes from the
// group's committed offsets: again every event is counted once and none is
// late (a stop drains the stream before it commits).
//
// The first backlog is dense (an hour of event time), so reader bundles
// span minutes of it and run side by side; the second is a day, a few
// events a minute. Two ways this went wrong: a partition whose first poll
// of a bundle came back empty took itself for caught up and moved its
// watermark to the wall clock; and a partition's watermark counted before
// its bundle's output was persisted, so another partition's bundle could
// close windows that output then reached late.
func TestStreamReplayHistory(t *testing.T) {
	brokers, prefix := kafkatest.Cluster(t, 4)
	store := sqliteURL(t)
	st := openStore(t, store)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -24)
	phase := func(seed uint64, start time.Time, events int) gen.Config {
		return gen.Config{Seed: seed, Start: start, Days: 1, Events: events, Apps: 5, SkewShare: 0.02, Punctual: true}
	}
	group := fmt.Sprintf("replay-%d", time.Now().UnixNano())
	cfg := pipelines.StreamConfig{TopicPrefix: prefix, Store: store, Every: time.Second,
		Kafka: kafkaio.ReadConfig{Brokers: brokers, Start: kafkaio.StartEarliest, Group: group, CommitOffsets: true}}

	dense := phase(41, day, 200_000)
	dense.Span = time.Hour
	a := produce(t, brokers, prefix, dense, false, 0, "")
	stop := startStream(t, cfg)
	awaitHistory(t, st, a)
	// The stop drains the stream and then commits where its readers
	// ended: no wait for idle bundles to commit.
	stop()

	b := produce(t, brokers, prefix, phase(42, day.AddDate(0, 0, 2), 20_000), false, 0, "")
	cfg.Kafka.Start = kafkaio.StartCommitted
	stop = startStream(t, cfg)
	defer stop()
	awaitHistory(t, st, sumTruths(a, b))
}

// awaitHistory waits until the speed layer counts every bucket of tr
// exactly with nothing late, and fails with the differences after two
// minutes.
func awaitHistory(t *testing.T, st serving.Store, tr *gen.StreamTruth) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for {
		speed, late, _ := speedState(t, st, tr)
		var diffs []string
		var counted, dropped int64
		for k, want := range tr.Counts {
			if speed[k] != want {
				diffs = append(diffs, fmt.Sprintf("%v: speed %d, want %d", k, speed[k], want))
			}
			if k.Gran == "minute" && k.Version == "" {
				counted += speed[k]
			}
		}
		for k, n := range late {
			diffs = append(diffs, fmt.Sprintf("%v: late %d, want 0", k, n))
			if k.Gran == "minute" && k.Version == "" {
				dropped += n
			}
		}
		if len(diffs) == 0 {
			t.Logf("replay exact after %v: %d events in %d minute, hour and day buckets, 0 late",
				time.Since(start).Round(100*time.Millisecond), tr.Valid, len(tr.Counts))
			return
		}
		if time.Now().After(deadline) || dropped > 0 {
			t.Logf("counted %d of %d events, %d late", counted, tr.Valid, dropped)
			reportDiffs(t, "historical replay vs truth", diffs)
			t.FailNow()
		}
		time.Sleep(time.Second)
	}
}
