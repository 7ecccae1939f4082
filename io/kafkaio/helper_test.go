package kafkaio

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

func init() {
	register.Function2x0(recordEvent)
	register.Function1x0(recordDead)
	register.Function2x0(recordLate)
}

func collect(s beam.Scope, events, dead, late beam.PCollection) {
	beam.ParDo0(s, recordEvent, events)
	beam.ParDo0(s, recordDead, dead)
	beam.ParDo0(s, recordLate, late)
}

func recordEvent(ts beam.EventTime, e event.Event) {
	mu.Lock()
	defer mu.Unlock()
	seenDevices = append(seenDevices, string(e.DeviceID))
	if ms, _ := e.BucketTime(); int64(ts) != ms {
		badTimestamps++
	}
}

func recordDead(deadletter.Record) { mu.Lock(); seenDead++; mu.Unlock() }

func recordLate(string, event.Event) { mu.Lock(); seenLate++; mu.Unlock() }
