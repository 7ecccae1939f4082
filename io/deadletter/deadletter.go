// Package deadletter defines the record lumen writes for every piece of input
// it could not use (DESIGN §9): an unreadable file, a damaged block, an
// undecodable Kafka message, an event that fails validation. Each carries
// where it came from and a stable reason code, so bad input is visible,
// countable and replayable, and never silently costs good data.
//
// This package holds the type, its Avro form, and dead-letter files
// (<root>/deadletter/<pipeline>/dt=…/, written atomically through
// io/blob); the pipelines decide where dead letters come from.
package deadletter

import (
	"fmt"
)

// Record is one dead letter.
type Record struct {
	// Pipeline is "batch", "stream" or "archive".
	Pipeline string
	// Source is a file path, or "topic/partition" for Kafka.
	Source string
	// Offset is the byte offset of the block (files) or the message offset
	// (Kafka); -1 if the whole source is affected.
	Offset int64
	// Index is the record's index within its block; -1 for a whole block or
	// file.
	Index int64
	// Lost is how many records this dead letter stands for, if known (a
	// corrupt block may hide an unknown number: 0).
	Lost int64
	// Reason is a stable code, e.g. "truncated_block" or "empty_app_id".
	Reason string
	// Detail is a human-readable explanation.
	Detail string
	// Payload holds the raw bytes of a bad record, when there is one.
	Payload []byte
}

func (r Record) String() string {
	return fmt.Sprintf("%s: %s@%d[%d]: %s: %s", r.Pipeline, r.Source, r.Offset, r.Index, r.Reason, r.Detail)
}
