package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Offsets are offsets per partition, keyed by TopicPartition.String()
// ("topic/partition").
type Offsets map[string]int64

// Positions are the offsets a launcher plans a read's start from.
type Positions struct {
	// Requested is where cfg.Start says each partition starts.
	Requested Offsets
	// Earliest and Head are each partition's first offset and the offset
	// of its next record, now.
	Earliest, Head Offsets
}

// ResolveStart resolves cfg.Start to offsets, once, for every partition of
// cfg.Topics that exists now (a topic that does not exist yet has none; its
// partitions are read from their beginning when they appear). A launcher
// sets the result, possibly moved, as cfg.StartOffsets, so that every
// worker starts where the plan says (serving.PlanStreamStart).
func ResolveStart(ctx context.Context, cfg ReadConfig) (Positions, error) {
	cfg.EnsureDefaults()
	f := kafkaFn{Brokers: cfg.Brokers, Security: cfg.Security}
	if err := f.setup(); err != nil {
		return Positions{}, err
	}
	defer f.Teardown()
	var topics []string
	for _, t := range cfg.Topics {
		n, err := partitions(ctx, f.admin, t)
		if err != nil {
			return Positions{}, err
		}
		if n > 0 {
			topics = append(topics, t)
		}
	}
	pos := Positions{Requested: Offsets{}, Earliest: Offsets{}, Head: Offsets{}}
	if len(topics) == 0 {
		return pos, nil
	}
	list := func(lo kadm.ListedOffsets, err error, into Offsets) error {
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			return fmt.Errorf("kafkaio: offsets of %v: %w", topics, err)
		}
		lo.Each(func(o kadm.ListedOffset) {
			into[TopicPartition{Topic: o.Topic, Partition: o.Partition}.String()] = o.Offset
		})
		return nil
	}
	lo, err := f.admin.ListStartOffsets(ctx, topics...)
	if err := list(lo, err, pos.Earliest); err != nil {
		return Positions{}, err
	}
	lo, err = f.admin.ListEndOffsets(ctx, topics...)
	if err := list(lo, err, pos.Head); err != nil {
		return Positions{}, err
	}
	switch cfg.Start {
	case StartEarliest:
		maps.Copy(pos.Requested, pos.Earliest)
	case StartLatest:
		maps.Copy(pos.Requested, pos.Head)
	case StartAtTime:
		lo, err = f.admin.ListOffsetsAfterMilli(ctx, cfg.StartTimeMs, topics...)
		if err := list(lo, err, pos.Requested); err != nil {
			return Positions{}, err
		}
	case StartCommitted:
		maps.Copy(pos.Requested, pos.Earliest) // nothing committed yet
		or, err := f.admin.FetchOffsetsForTopics(ctx, cfg.Group, topics...)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return Positions{}, fmt.Errorf("kafkaio: committed offsets of group %s: %w", cfg.Group, err)
		}
		or.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && o.At >= 0 {
				pos.Requested[TopicPartition{Topic: o.Topic, Partition: o.Partition}.String()] = o.At
			}
		})
	default:
		return Positions{}, fmt.Errorf("kafkaio: start %q", cfg.Start)
	}
	return pos, nil
}
