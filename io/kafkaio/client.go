package kafkaio

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaFn holds what every Kafka DoFn shares: the brokers and how to reach
// them (serialised config) and a client built in Setup, closed in Teardown.
type kafkaFn struct {
	Brokers  []string
	Security Security

	client *kgo.Client
	admin  *kadm.Client
}

func (f *kafkaFn) setup(opts ...kgo.Opt) error {
	if f.client != nil {
		return nil
	}
	sec, err := f.Security.Opts()
	if err != nil {
		return err
	}
	c, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(f.Brokers...)}, sec...), opts...)...)
	if err != nil {
		return fmt.Errorf("kafkaio: client for %v: %w", f.Brokers, err)
	}
	f.client, f.admin = c, kadm.NewClient(c)
	return nil
}

// Teardown closes the client.
func (f *kafkaFn) Teardown() {
	if f.client != nil {
		f.client.Close()
		f.client, f.admin = nil, nil
	}
}

// partitions returns a topic's partition count; 0 if it does not exist yet.
func partitions(ctx context.Context, admin *kadm.Client, topic string) (int, error) {
	td, err := admin.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("kafkaio: metadata of %s: %w", topic, err)
	}
	d, ok := td[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return 0, nil
	}
	if d.Err != nil {
		return 0, fmt.Errorf("kafkaio: metadata of %s: %w", topic, d.Err)
	}
	return len(d.Partitions), nil
}

// lookup picks one partition's offset from a kadm listing.
func lookup(lo kadm.ListedOffsets, tp TopicPartition) (int64, error) {
	o, ok := lo.Lookup(tp.Topic, tp.Partition)
	if !ok {
		return 0, fmt.Errorf("kafkaio: no offset listed for %v", tp)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("kafkaio: offset of %v: %w", tp, o.Err)
	}
	return o.Offset, nil
}
