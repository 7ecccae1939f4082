// Package event defines lumen's three event kinds (app loads, crashes and
// handled exceptions), their pinned Avro schemas (DESIGN §1), validation, and
// the codecs that move them between Go structs and Avro: a decoder and encoder
// specialised to the pinned schemas for the hot path, conversion from
// goavro's native form for any other conforming writer schema, and Avro
// single-object encoding with the specification's fingerprint for Kafka.
//
// It is not for aggregation (see aggregate) or for file and stream IO (see
// io/...): it only knows what one event is.
package event

import (
	"fmt"
	"time"
)

// Namespace is the Avro namespace of the pinned records.
const Namespace = "lumen.events"

// Event is one decoded event of any kind. Times are milliseconds since the
// Unix epoch, UTC, as in the Avro timestamp-millis logical type.
//
// Signature is set for crashes and handled exceptions and empty for app
// loads.
type Event struct {
	Kind         Kind
	AppID        string
	AppVersion   string
	Platform     string
	DeviceID     []byte
	EventTime    int64
	ReceivedTime int64
	Signature    string
}

// EventAt returns EventTime as a time.Time in UTC.
func (e *Event) EventAt() time.Time { return time.UnixMilli(e.EventTime).UTC() }

// ReceivedAt returns ReceivedTime as a time.Time in UTC.
func (e *Event) ReceivedAt() time.Time { return time.UnixMilli(e.ReceivedTime).UTC() }

// String is for logs and test failures; device ids print as hex.
func (e Event) String() string {
	s := fmt.Sprintf("%s{app=%q version=%q platform=%q device=%x event=%s received=%s",
		e.Kind, e.AppID, e.AppVersion, e.Platform, e.DeviceID,
		e.EventAt().Format(time.RFC3339Nano), e.ReceivedAt().Format(time.RFC3339Nano))
	if e.Kind.HasSignature() {
		s += fmt.Sprintf(" signature=%q", e.Signature)
	}
	return s + "}"
}

// BucketTime returns the time the event is bucketed by (DESIGN §3): its
// event_time, unless the device clock ran ahead of the collector's
// (event_time > received_time), in which case received_time, and skewed is
// true so the caller can count it as clock_skew. It is also the event's
// event-time timestamp in the streaming layer.
func (e *Event) BucketTime() (ms int64, skewed bool) {
	if e.EventTime > e.ReceivedTime {
		return e.ReceivedTime, true
	}
	return e.EventTime, false
}
