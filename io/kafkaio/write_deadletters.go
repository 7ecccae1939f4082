package kafkaio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

func init() {
	register.DoFn2x1[context.Context, deadletter.Record, error](&writeDeadLettersFn{})
}

// MaxDeadLetterBytes is the most a dead letter on Kafka may take, encoded:
// below the 1 MB that brokers (message.max.bytes) and producers
// (batch.max.bytes) allow by default, with room for the key and the batch
// framing. A larger dead letter is truncated to fit (FitDeadLetter).
const MaxDeadLetterBytes = 900 << 10

// maxDetailBytes is what a truncated dead letter keeps of its detail: the
// payload is the evidence, the detail only describes it.
const maxDetailBytes = 4 << 10

// deadLetterFP is the fingerprint of deadletter.Schema: dead letters on
// Kafka use Avro single-object encoding of it, so any Avro consumer can
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

// FitDeadLetter encodes r in at most limit bytes. One that is larger keeps
// its pipeline, source, offset and reason, at most 4 KiB of its detail
// (with a note of what was cut) and as much of its payload, from the
// start, as fits. truncated says whether anything was cut.
func FitDeadLetter(r deadletter.Record, limit int) (b []byte, truncated bool, err error) {
	if b, err = EncodeDeadLetter(r); err != nil || len(b) <= limit {
		return b, false, err
	}
	full := len(b)
	detail := cutUTF8(r.Detail, maxDetailBytes)
	note := fmt.Sprintf(" [truncated to fit the dead-letter topic: %d bytes encoded, limit %d; detail %d of %d bytes, payload %%d of %d bytes]",
		full, limit, len(detail), len(r.Detail), len(r.Payload))
	t := r
	t.Detail, t.Payload = detail+fmt.Sprintf(note, 0), nil
	base, err := EncodeDeadLetter(t)
	if err != nil {
		return nil, false, err
	}
	// The payload adds its bytes, a length of up to 10 and the digits of
	// its size in the note; the union's branch is already counted.
	room := limit - len(base) - 10 - 20
	if room < 0 {
		return nil, false, fmt.Errorf("kafkaio: dead letter of %s at offset %d does not fit in %d bytes even without its payload", r.Source, r.Offset, limit)
	}
	if r.Payload != nil {
		t.Payload = r.Payload[:min(room, len(r.Payload))]
	}
	t.Detail = detail + fmt.Sprintf(note, len(t.Payload))
	b, err = EncodeDeadLetter(t)
	if err == nil && len(b) > limit {
		err = fmt.Errorf("kafkaio: dead letter of %s at offset %d truncated to %d bytes, over %d", r.Source, r.Offset, len(b), limit)
	}
	return b, true, err
}

// cutUTF8 cuts s to at most n bytes, at a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// WriteDeadLetters sends dead letters to the dead-letter topic, keyed by
// their source, through brokers reached as sec says.
//
// A dead letter never stops the stream: one larger than
// MaxDeadLetterBytes is truncated to fit (lumen.kafka
// deadletter_truncated_<reason>); one whose send fails is counted
// (deadletter_send_failed_<reason>) and logged with its source partition
// and offset, and later bundles go on. A dead-letter topic that is missing
// or refuses writes is logged once per worker and counted the same way.
// The bundle fails only if its context ends before its sends complete, so
// that the runner retries it.
//
//	dead: PCollection<deadletter.Record> → ()
func WriteDeadLetters(s beam.Scope, brokers []string, sec Security, topicPrefix string, dead beam.PCollection) {
	s = s.Scope("kafkaio.WriteDeadLetters")
	if err := sec.Validate(); err != nil {
		panic(fmt.Sprintf("kafkaio.WriteDeadLetters: %v", err))
	}
	beam.ParDo0(s, &writeDeadLettersFn{kafkaFn: kafkaFn{Brokers: brokers, Security: sec}, Topic: DeadLetterTopic(topicPrefix),
		MaxBytes: MaxDeadLetterBytes}, dead)
}

type writeDeadLettersFn struct {
	kafkaFn
	Topic    string
	MaxBytes int

	mu        sync.Mutex
	truncated map[string]int64 // per reason, this bundle
	failed    map[string]int64 // per reason, this bundle
	reported  map[string]bool  // topic-wide errors logged by this instance
}

// deliveryTimeout bounds how long a dead letter is retried (a broker away,
// a leader moving) before it counts as failed: a bundle waits for its dead
// letters, and must not wait for ever.
const deliveryTimeout = time.Minute

func (f *writeDeadLettersFn) Setup() error {
	f.truncated, f.failed, f.reported = map[string]int64{}, map[string]int64{}, map[string]bool{}
	return f.setup(kgo.ProducerLinger(5*time.Millisecond), kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(deliveryTimeout), kgo.UnknownTopicRetries(2))
}

func (f *writeDeadLettersFn) ProcessElement(ctx context.Context, r deadletter.Record) error {
	b, truncated, err := FitDeadLetter(r, f.MaxBytes)
	if err != nil {
		f.failedSend(r, err)
		return nil
	}
	if truncated {
		f.mu.Lock()
		f.truncated[r.Reason]++
		f.mu.Unlock()
	}
	rec := &kgo.Record{Topic: f.Topic, Key: []byte(r.Source), Value: b, Timestamp: time.Now()}
	f.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			f.failedSend(r, err)
		}
	})
	return nil
}

// failedSend counts a dead letter that did not reach the topic and logs
// it: with its source and offset, or, for an error of the whole topic,
// once.
func (f *writeDeadLettersFn) failedSend(r deadletter.Record, err error) {
	f.mu.Lock()
	f.failed[r.Reason]++
	topicWide := topicError(err)
	first := !f.reported[err.Error()]
	if topicWide && first {
		f.reported[err.Error()] = true
	}
	f.mu.Unlock()
	switch {
	case !topicWide:
		slog.Warn("kafkaio: dead letter not sent", "topic", f.Topic, "source", r.Source, "offset", r.Offset, "reason", r.Reason, "error", err.Error())
	case first:
		slog.Error("kafkaio: the dead-letter topic takes no dead letters; they are counted (lumen.kafka deadletter_send_failed_<reason>) and dropped",
			"topic", f.Topic, "error", err.Error(), "first_source", r.Source, "first_offset", r.Offset)
	}
}

// topicError reports errors of the dead-letter topic as a whole: it does
// not exist, or this client may not write to it.
func topicError(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.InvalidTopicException) || errors.Is(err, kerr.PolicyViolation)
}

// FinishBundle waits for the bundle's dead letters: they are durable (or
// counted as failed) before the bundle commits.
func (f *writeDeadLettersFn) FinishBundle(ctx context.Context) error {
	if err := f.client.Flush(ctx); err != nil {
		return fmt.Errorf("kafkaio: flushing dead letters to %s: %w", f.Topic, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for reason, n := range f.truncated {
		beam.NewCounter("lumen.kafka", "deadletter_truncated_"+reason).Inc(ctx, n)
	}
	for reason, n := range f.failed {
		beam.NewCounter("lumen.kafka", "deadletter_send_failed_"+reason).Inc(ctx, n)
	}
	clear(f.truncated)
	clear(f.failed)
	return nil
}
