package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/gen"
	"github.com/lumenhq/lumen/io/kafkaio"
	"github.com/lumenhq/lumen/pipelines"
	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/testing/kafkatest"
)

// TestStreamBrokerRestart: live traffic at 20,000 events/s; once it
// reaches the store, the real Kafka broker is stopped (SIGTERM), stays down for 20 s, and is
// started again on its data. The producer waits for it, the stream
// recovers by itself, and every event sent is counted exactly once or
// reported late, per minute and hour; the test says how many of each.
func TestStreamBrokerRestart(t *testing.T) {
	brokers, prefix := kafkatest.DisturbedCluster(t, 3)
	store := sqliteURL(t)
	st := openStore(t, store)
	ls := launchStream(t, pipelines.StreamConfig{Kafka: kafkaio.ReadConfig{Brokers: brokers}, TopicPrefix: prefix, Store: store, Every: time.Second})
	awaitReady(t, brokers, prefix, st)

	const rate, seconds = 20_000, 40
	cfg := gen.Config{Seed: 1211, Start: time.Now().UTC().Truncate(24 * time.Hour), Days: 1, Events: rate * seconds, Apps: 8,
		Punctual: true, SkewShare: 0.01}
	type result struct {
		tr  *gen.StreamTruth
		err error
	}
	sent := make(chan result, 1)
	go func() {
		tr, err := sendLive(brokers, prefix, cfg, rate)
		sent <- result{tr, err}
	}()
	awaitSpeedRows(t, st, ls.gone) // the fault comes while traffic flows through to the store
	kafkatest.RestartBroker(t, 20*time.Second)
	r := <-sent
	if r.err != nil {
		t.Fatalf("producing through the restart: %v", r.err)
	}
	t.Logf("sent %d valid events at %d/s through the restart", r.tr.Valid, rate)
	awaitAccounted(t, st, r.tr, 2*time.Minute, ls.gone)
	counted, late := speedAgainstTruth(t, st, r.tr)
	t.Logf("after the broker restart: %d events counted once by the speed layer, %d reported late (left to the batch), of %d",
		counted, late, r.tr.Valid)
}

// awaitSpeedRows waits until the speed layer has stored a row of today:
// traffic flows from the producer through the stream to the store.
func awaitSpeedRows(t *testing.T, st serving.Store, gone func() string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(3 * time.Minute)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for {
		rows, err := st.Catalog(context.Background(), serving.Speed, event.AppLoad, today, today.Add(24*time.Hour-time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 {
			return
		}
		if why := gone(); why != "" {
			t.Fatal(why)
		}
		select {
		case <-deadline:
			t.Fatal("the stream stored no row of today in 3 minutes")
		case <-tick.C:
		}
	}
}

// sendLive produces cfg live (re-stamped to now) at rate events/s and
// returns the truth of what was sent; a goroutine's version of produce.
func sendLive(brokers []string, prefix string, cfg gen.Config, rate float64) (*gen.StreamTruth, error) {
	p, err := kafkaio.NewProducer(brokers, prefix)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	tr := gen.NewStreamTruth()
	ks := gen.NewKafkaSink(context.Background(), p, rate, true, tr)
	if err := gen.Generate(cfg, ks); err != nil {
		return nil, err
	}
	if err := ks.Close(); err != nil {
		return nil, err
	}
	return tr, p.Err()
}
