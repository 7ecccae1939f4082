// Package coders registers lumen's Beam coders, once, for the model types
// that cross shuffles and runner boundaries: aggregate.AppKey and
// aggregate.Agg, and event.Event. Every package that builds graphs with
// them imports it (transforms, io/kafkaio); Beam's default would be JSON
// for Agg's maps and pointers, and an AppKey needs a deterministic
// encoding to be a key. It imports only the model, so both sides of the
// dependency rule can.
package coders

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

func init() {
	beam.RegisterCoder(reflect.TypeOf(aggregate.AppKey{}), aggregate.EncodeAppKey, aggregate.DecodeAppKey)
	beam.RegisterCoder(reflect.TypeOf(aggregate.Agg{}), aggregate.EncodeAgg, aggregate.DecodeAgg)
	beam.RegisterCoder(reflect.TypeOf(event.Event{}), encodeEvent, decodeEvent)
}

var errShort = errors.New("coders: truncated event encoding")

func encodeEvent(e event.Event) []byte {
	return event.AppendBinary([]byte{byte(e.Kind)}, &e)
}

func decodeEvent(b []byte) (event.Event, error) {
	if len(b) < 1 {
		return event.Event{}, errShort
	}
	var e event.Event
	k := event.Kind(b[0])
	if !k.Valid() {
		return e, fmt.Errorf("coders: event coder: bad kind %d", b[0])
	}
	if _, err := event.NewDecoder().Decode(k, b[1:], &e); err != nil {
		return e, err
	}
	return e.Clone(), nil
}
