package gen

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/kafkaio"
)

// KafkaSink is a Sink that sends records to Kafka in arrival order, as
// the collectors would.
//
// Each record is sent when the limiter allows (Rate events/s, 0 for no
// limit). Live re-stamps it to the wall clock: its arrival becomes the send
// time, and its event_time and received_time move by the same amount, so
// how late a device reports is preserved (an offline device's events still
// arrive hours to days after they happened). Without Live, records keep
// their generated times: a replay of history, for bounded reads. Then, if
// set, sees every record as sent, so a truth built from it is the truth of
// what is on Kafka.
type KafkaSink struct {
	Producer *kafkaio.Producer
	Rate     float64
	Live     bool
	Then     Sink
	// Now is the clock; default time.Now.
	Now func() time.Time

	ctx     context.Context
	lim     *rate.Limiter
	pending []Record
	Sent    int64
}

// NewKafkaSink returns a sink sending through p at rate events/s (0: as
// fast as Kafka takes them), re-stamped to the wall clock if live.
func NewKafkaSink(ctx context.Context, p *kafkaio.Producer, rateLimit float64, live bool, then Sink) *KafkaSink {
	k := &KafkaSink{Producer: p, Rate: rateLimit, Live: live, Then: then, Now: time.Now, ctx: ctx}
	if rateLimit > 0 {
		// A burst of a tenth of a second keeps the pace smooth.
		k.lim = rate.NewLimiter(rate.Limit(rateLimit), max(1, int(rateLimit/10)))
	}
	return k
}

// Record buffers r until its arrival day is complete.
func (k *KafkaSink) Record(r *Record) error {
	c := *r
	c.Event = r.Event.Clone()
	k.pending = append(k.pending, c)
	return nil
}

// DayDone sends every record arriving before the end of day, in arrival
// order.
func (k *KafkaSink) DayDone(day time.Time) error {
	cut := day.AddDate(0, 0, 1).UnixMilli()
	slices.SortStableFunc(k.pending, func(a, b Record) int { return cmp.Compare(a.Arrival, b.Arrival) })
	i := 0
	for ; i < len(k.pending) && k.pending[i].Arrival < cut; i++ {
		if err := k.send(&k.pending[i]); err != nil {
			return err
		}
	}
	k.pending = slices.Delete(k.pending, 0, i)
	if k.Then != nil {
		return k.Then.DayDone(day)
	}
	return nil
}

// Close sends whatever is pending and waits for Kafka to take it.
func (k *KafkaSink) Close() error {
	if err := k.DayDone(time.UnixMilli(1 << 50)); err != nil {
		return err
	}
	return k.Producer.Flush(k.ctx)
}

func (k *KafkaSink) send(r *Record) error {
	if k.lim != nil {
		if err := k.lim.Wait(k.ctx); err != nil {
			return err
		}
	} else if err := k.ctx.Err(); err != nil {
		return err
	}
	if k.Live {
		Restamp(r, k.Now().UnixMilli()-r.Arrival)
	}
	k.Producer.Produce(k.ctx, &r.Event)
	k.Sent++
	if k.Sent%10_000 == 0 {
		if err := k.Producer.Err(); err != nil {
			return err
		}
	}
	if k.Then != nil {
		return k.Then.Record(r)
	}
	return nil
}

// Restamp moves a record's arrival and times by shift ms, leaving a time
// that makes it invalid (before 2000) as it is.
func Restamp(r *Record, shift int64) {
	r.Arrival += shift
	if r.Invalid != event.ReasonEventTimeBefore2000 {
		r.Event.EventTime += shift
	}
	if r.Invalid != event.ReasonReceivedTimeBefore2000 {
		r.Event.ReceivedTime += shift
	}
}

// StreamKey identifies one bucket of the speed layer: Gran is "minute",
// "hour" or "day"; Version "" is all versions.
type StreamKey struct {
	Kind    event.Kind
	App     string
	Version string
	Gran    string
	Bucket  time.Time
}

func (k StreamKey) String() string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", k.Kind, k.App, k.Version, k.Gran, k.Bucket.Format(time.RFC3339))
}

// StreamTruth is a Sink computing what a stream over the records must
// count: every valid record, per minute, hour and day of its bucket time
// (event_time, or received_time if the device clock ran ahead), and the
// distinct devices per day. It shares nothing with lumen's transforms.
type StreamTruth struct {
	Counts  map[StreamKey]int64
	Devices map[StreamKey]map[string]struct{} // Gran "day"
	Valid   int64
	Invalid map[string]int64
}

// NewStreamTruth returns an empty StreamTruth.
func NewStreamTruth() *StreamTruth {
	return &StreamTruth{Counts: map[StreamKey]int64{}, Devices: map[StreamKey]map[string]struct{}{}, Invalid: map[string]int64{}}
}

// Record accounts for one record.
func (t *StreamTruth) Record(r *Record) error {
	if r.Invalid != "" {
		t.Invalid[string(r.Invalid)]++
		return nil
	}
	t.Valid++
	e := &r.Event
	when := e.EventTime
	if e.EventTime > e.ReceivedTime {
		when = e.ReceivedTime
	}
	at := time.UnixMilli(when).UTC()
	day := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	for _, v := range []string{e.AppVersion, ""} {
		t.Counts[StreamKey{e.Kind, e.AppID, v, "minute", at.Truncate(time.Minute)}]++
		t.Counts[StreamKey{e.Kind, e.AppID, v, "hour", at.Truncate(time.Hour)}]++
		dk := StreamKey{e.Kind, e.AppID, v, "day", day}
		t.Counts[dk]++
		set := t.Devices[dk]
		if set == nil {
			set = map[string]struct{}{}
			t.Devices[dk] = set
		}
		set[string(e.DeviceID)] = struct{}{}
	}
	return nil
}

// DayDone does nothing.
func (t *StreamTruth) DayDone(time.Time) error { return nil }
