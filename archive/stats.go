package archive

import (
	"errors"
	"fmt"
	"maps"

	"github.com/lumenhq/lumen/event"
)

// Stats counts what an Archiver did since it started.
type Stats struct {
	// Consumed is every message taken from Kafka, archived or not.
	Consumed int64
	// Archived is the records in files that are durable (rolled).
	Archived int64
	// Files and Bytes are the raw files made durable and their size.
	Files int64
	Bytes int64
	// Segments is how many segments rolled; Commits how many offset
	// commits succeeded, CommitErrors how many failed (retried after the
	// next poll: the files are durable either way).
	Segments     int64
	Commits      int64
	CommitErrors int64
	// DeadLetters counts messages that could not be archived, by reason
	// (ReasonUndecodable, ReasonKindMismatch, ReasonBadReceivedTime,
	// ReasonFutureTime), and
	// DeadLetterFiles the files holding them.
	DeadLetters     map[string]int64
	DeadLetterFiles int64
	// Seals counts the arrival hours sealed (seal.go), SealErrors the
	// sealing attempts that failed (retried at the next interval), and
	// ArchivedAfterSeal the records written into an hour this process
	// had already sealed: they reached Kafka more than SealDelay after
	// their received_time, and a batch run that saw the hour sealed
	// missed them (its next run of that day counts them).
	Seals             int64
	SealErrors        int64
	ArchivedAfterSeal int64
	// LeftoversRemoved counts uncommitted files of earlier owners deleted
	// before their records were written again.
	LeftoversRemoved int64
	// Lag is the records behind the high watermarks of the assigned
	// partitions, as of the last fetch.
	Lag int64
	// Partitions is how many partitions are assigned.
	Partitions int
	// UncommittedBytes and UncommittedRecords are what the open segments
	// hold: read from Kafka, not yet durable in the archive, so read
	// again after a crash.
	UncommittedBytes, UncommittedRecords int64
}

// The dead-letter reasons of the archiver. The first two match the stream's.
const (
	ReasonUndecodable     = "undecodable"
	ReasonKindMismatch    = "kind_mismatch"
	ReasonBadReceivedTime = "received_time_unpartitionable"
	// ReasonFutureTime is event.ReasonFutureTime: an event_time or
	// received_time more than Config.MaxFuture ahead of the archiver's
	// clock.
	ReasonFutureTime = string(event.ReasonFutureTime)
)

func (s Stats) clone() Stats {
	s.DeadLetters = maps.Clone(s.DeadLetters)
	return s
}

// OutputError is a failure to write, list or delete in the archive root.
// The archiver stops on it without committing what it was writing.
type OutputError struct {
	Op   string // "create", "write", "close", "list", "delete", "sync"
	Path string
	Err  error
}

func (e *OutputError) Error() string { return fmt.Sprintf("archive: %s %s: %v", e.Op, e.Path, e.Err) }

func (e *OutputError) Unwrap() error { return e.Err }

// IsOutputError reports whether err is a failure of the archive's output
// (as opposed to Kafka or configuration): retrying after the output
// recovers resumes where the committed offsets stand.
func IsOutputError(err error) bool {
	var oe *OutputError
	return errors.As(err, &oe)
}
