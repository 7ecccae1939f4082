package event

import (
	"time"
	"unicode/utf8"
)

// Reason says why an event was rejected. It is stable text: it is stored in
// dead-letter records, used as a metric name, and asserted by tests.
type Reason string

// The validation failures (DESIGN §9). Field limits come from DESIGN §1.
const (
	ReasonBadKind                Reason = "bad_kind"
	ReasonEmptyAppID             Reason = "empty_app_id"
	ReasonAppIDTooLong           Reason = "app_id_too_long"
	ReasonAppIDNotUTF8           Reason = "app_id_not_utf8"
	ReasonEmptyAppVersion        Reason = "empty_app_version"
	ReasonAppVersionTooLong      Reason = "app_version_too_long"
	ReasonAppVersionNotUTF8      Reason = "app_version_not_utf8"
	ReasonEmptyDeviceID          Reason = "empty_device_id"
	ReasonDeviceIDTooLong        Reason = "device_id_too_long"
	ReasonEventTimeBefore2000    Reason = "event_time_before_2000"
	ReasonReceivedTimeBefore2000 Reason = "received_time_before_2000"
	// The signature of a crash or handled exception is its group's key:
	// it becomes a row key and a label on the dashboard.
	ReasonEmptySignature   Reason = "empty_signature"
	ReasonSignatureTooLong Reason = "signature_too_long"
	ReasonSignatureNotUTF8 Reason = "signature_not_utf8"
	// ReasonFutureTime: the event time or the received time is more than
	// the allowed bound ahead of the processing clock (DESIGN §3, time
	// bounds). A device or a producer with a wrong clock or unit (micro-
	// seconds for milliseconds) must not create buckets, folders or
	// watermarks in the future.
	ReasonFutureTime Reason = "future_time"
)

// DefaultMaxFuture is how far ahead of the processing clock an event or
// received time may be (DESIGN §3: max_future, default 1 h).
const DefaultMaxFuture = time.Hour

// Field limits from DESIGN §1.
const (
	MaxAppIDLen      = 128
	MaxAppVersionLen = 64
	MaxDeviceIDLen   = 64
	// MaxSignatureLen bounds a crash group's key (DESIGN §1 leaves it
	// open; a stack-trace hash or a symbolicated frame fits easily).
	MaxSignatureLen = 256
)

// MinTime is the earliest accepted event or received time: 2000-01-01 UTC.
// Earlier stamps come from devices with unset clocks.
var MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// Validate returns "" if e may be aggregated, or the first reason it may not.
// It allocates nothing and is cheap enough for the per-record hot path.
func Validate(e *Event) Reason {
	switch {
	case !e.Kind.Valid():
		return ReasonBadKind
	case len(e.AppID) == 0:
		return ReasonEmptyAppID
	case len(e.AppID) > MaxAppIDLen:
		return ReasonAppIDTooLong
	case len(e.AppVersion) == 0:
		return ReasonEmptyAppVersion
	case len(e.AppVersion) > MaxAppVersionLen:
		return ReasonAppVersionTooLong
	case len(e.DeviceID) == 0:
		return ReasonEmptyDeviceID
	case len(e.DeviceID) > MaxDeviceIDLen:
		return ReasonDeviceIDTooLong
	case e.EventTime < MinTime:
		return ReasonEventTimeBefore2000
	case e.ReceivedTime < MinTime:
		return ReasonReceivedTimeBefore2000
	case !utf8.ValidString(e.AppID):
		// App ids and versions become keys in text columns, which Cassandra
		// checks for UTF-8, and JSON output.
		return ReasonAppIDNotUTF8
	case !utf8.ValidString(e.AppVersion):
		return ReasonAppVersionNotUTF8
	case e.Kind.HasSignature():
		switch {
		case len(e.Signature) == 0:
			return ReasonEmptySignature
		case len(e.Signature) > MaxSignatureLen:
			return ReasonSignatureTooLong
		case !utf8.ValidString(e.Signature):
			return ReasonSignatureNotUTF8
		}
	}
	return ""
}

// CheckFuture returns ReasonFutureTime if the times lumen uses of e, its
// received time and its bucket time (BucketTime), are more than maxFuture
// after nowMs (ms since the epoch), else "". Every pipeline applies it with
// its own clock, after Validate: the batch with the run's start, the
// archiver and the stream with the time a record is read.
//
// The bucket time is never after the received time, so the received time
// decides. An event time ahead of a sane received time is a device clock
// running ahead: clock skew, counted by arrival (BucketTime), however far
// ahead (docs/design-notes.md, "Time bounds"). Bounding it too would make
// a skewed device's events dead letters or not depending on when a run
// ran, so re-runs of one day would disagree, and the speed layer would drop
// what the batch counts.
func CheckFuture(e *Event, nowMs int64, maxFuture time.Duration) Reason {
	if e.ReceivedTime > nowMs+maxFuture.Milliseconds() {
		return ReasonFutureTime
	}
	return ""
}
