package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
)

// Producer writes lumen events to their topics as DESIGN §2 pins them:
// key = device_id (so a device's events stay in order on one partition),
// value = Avro single-object encoding with the specification's
// fingerprint, record timestamp = received_time. Writes are asynchronous;
// Flush waits for them and returns the first error. It is for producers of
// events (the generators, the demo, tests), where the first failure ends
// the run; the pipeline's dead-letter writer does not use it, since one
// failed dead letter must not fail every bundle after it.
type Producer struct {
	client *kgo.Client
	prefix string

	mu  sync.Mutex
	err error
	buf []byte
}

// NewProducer connects to brokers.
func NewProducer(brokers []string, topicPrefix string, opts ...kgo.Opt) (*Producer, error) {
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: producer for %v: %w", brokers, err)
	}
	return &Producer{client: c, prefix: topicPrefix}, nil
}

// Produce sends one event.
func (p *Producer) Produce(ctx context.Context, e *event.Event) {
	r := &kgo.Record{
		Topic:     Topic(p.prefix, e.Kind),
		Key:       append([]byte(nil), e.DeviceID...),
		Value:     event.AppendSingle(nil, e),
		Timestamp: time.UnixMilli(e.ReceivedTime),
	}
	p.client.Produce(ctx, r, p.done)
}

// ProduceRaw sends a raw record (tests use it for undecodable messages).
func (p *Producer) ProduceRaw(ctx context.Context, topic string, key, value []byte, ts time.Time) {
	p.client.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value, Timestamp: ts}, p.done)
}

func (p *Producer) done(_ *kgo.Record, err error) {
	if err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = fmt.Errorf("kafkaio: produce: %w", err)
		}
		p.mu.Unlock()
	}
}

// Err returns the first error of an asynchronous send so far.
func (p *Producer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush waits for every record sent so far.
func (p *Producer) Flush(ctx context.Context) error {
	err := p.client.Flush(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(err, p.err)
}

// Close flushes and closes.
func (p *Producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Flush(ctx)
	p.client.Close()
	return err
}

// Client is the underlying franz-go client.
func (p *Producer) Client() *kgo.Client { return p.client }
