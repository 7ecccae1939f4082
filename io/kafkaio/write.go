package kafkaio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

func init() {
	register.DoFn2x1[context.Context, deadletter.Record, error](&writeDeadLettersFn{})
}

// Producer writes lumen events to their topics as DESIGN §2 pins them:
// key = device_id (so a device's events stay in order on one partition),
// value = Avro single-object encoding with the specification's
// fingerprint, record timestamp = received_time. Writes are asynchronous;
// Flush waits for them and returns the first error.
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

// deadLetterMarker and fingerprint: dead letters on Kafka use Avro
// single-object encoding of deadletter.Schema, so any Avro consumer can
// read the topic.
var deadLetterFP = sync.OnceValues(func() (uint64, error) {
	pcf, err := event.CanonicalForm([]byte(deadletter.Schema))
	return event.Fingerprint64([]byte(pcf)), err
})

// EncodeDeadLetter renders a dead letter as a single-object Avro message.
func EncodeDeadLetter(r deadletter.Record) ([]byte, error) {
	fp, err := deadLetterFP()
	if err != nil {
		return nil, err
	}
	b := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, fp)
	return deadletter.AppendBinary(b, r)
}

// WriteDeadLetters sends dead letters to the dead-letter topic, keyed by
// their source, through brokers reached as sec says.
//
//	dead: PCollection<deadletter.Record> → ()
func WriteDeadLetters(s beam.Scope, brokers []string, sec Security, topicPrefix string, dead beam.PCollection) {
	s = s.Scope("kafkaio.WriteDeadLetters")
	if err := sec.Validate(); err != nil {
		panic(fmt.Sprintf("kafkaio.WriteDeadLetters: %v", err))
	}
	beam.ParDo0(s, &writeDeadLettersFn{kafkaFn: kafkaFn{Brokers: brokers, Security: sec}, Topic: DeadLetterTopic(topicPrefix)}, dead)
}

type writeDeadLettersFn struct {
	kafkaFn
	Topic string
	p     *Producer
}

func (f *writeDeadLettersFn) Setup() error {
	sec, err := f.Security.Opts()
	if err != nil {
		return err
	}
	f.p, err = NewProducer(f.Brokers, "", sec...)
	return err
}

func (f *writeDeadLettersFn) ProcessElement(ctx context.Context, r deadletter.Record) error {
	b, err := EncodeDeadLetter(r)
	if err != nil {
		return err
	}
	f.p.ProduceRaw(ctx, f.Topic, []byte(r.Source), b, time.Now())
	return nil
}

// FinishBundle waits for the bundle's dead letters: they are durable before
// the bundle commits.
func (f *writeDeadLettersFn) FinishBundle(ctx context.Context) error { return f.p.Flush(ctx) }

func (f *writeDeadLettersFn) Teardown() {
	if f.p != nil {
		f.p.Close()
	}
}
