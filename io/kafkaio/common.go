// Package kafkaio is lumen's native Kafka IO for Beam Go, on franz-go.
// Beam Go's only Kafka IO is a cross-language wrapper that needs a Java
// expansion service and is reported to emit nothing on Flink.
//
// Read is an unbounded splittable DoFn: its restriction is a range of
// offsets of one topic-partition, partitions are discovered as they appear,
// it checkpoints itself after MaxBundleTime (250 ms) or MaxBundleRecords,
// or when caught up, and it estimates a watermark
// per partition from event time with bounded out-of-orderness, advancing
// idle partitions so they do not hold the pipeline back. It decodes Avro
// single-object encoding into events and dead-letters what it cannot. In
// bounded mode it reads to the end offsets (or an end time) and stops, for
// replays and tests. Writer and Write produce events and dead letters.
package kafkaio

import (
	"fmt"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// DefaultTopicPrefix prefixes the event topics: lumen.app_load, lumen.crash,
// lumen.handled_exception (DESIGN §2).
const DefaultTopicPrefix = "lumen."

// Topic is the topic of one kind.
func Topic(prefix string, k event.Kind) string { return prefix + k.String() }

// DeadLetterTopic is where Write sends dead letters.
func DeadLetterTopic(prefix string) string { return prefix + "deadletter" }

// KindOfTopic returns the kind a topic carries.
func KindOfTopic(prefix, topic string) (event.Kind, bool) {
	name, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return 0, false
	}
	k, err := event.ParseKind(name)
	return k, err == nil
}

// TopicPartition names one partition; it is Read's element. New marks a
// partition added after reading began: it is read from its beginning.
type TopicPartition struct {
	Topic     string
	Partition int32
	New       bool
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// StartPosition says where a partition's reading starts.
type StartPosition string

// Start positions (DESIGN §3: a restart starts at the head).
const (
	StartLatest    StartPosition = "latest"    // only records produced after the start
	StartEarliest  StartPosition = "earliest"  // everything retained
	StartCommitted StartPosition = "committed" // the group's committed offsets (earliest where none)
	StartAtTime    StartPosition = "time"      // the first record at or after ReadConfig.StartTime
)

// ParseStart parses --start: latest, earliest, committed or an RFC3339 time.
func ParseStart(s string) (StartPosition, time.Time, error) {
	switch StartPosition(s) {
	case StartLatest, StartEarliest, StartCommitted:
		return StartPosition(s), time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("kafkaio: start %q: want latest, earliest, committed or an RFC3339 time", s)
	}
	return StartAtTime, t, nil
}
