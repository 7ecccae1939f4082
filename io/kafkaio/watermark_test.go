package kafkaio

import (
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/graph/mtime"
)

// A partition's watermark counts for the Read only once the bundle that
// advanced it is persisted, which the runner shows by resuming the
// partition: a bundle of another partition that ends meanwhile must not
// report it, or the runner could close windows that the first bundle's
// output, still in flight, then reaches late.
func TestWatermarkPublishedWhenPersisted(t *testing.T) {
	const id = "test-published"
	reg := newWatermarkRegistry(time.Now)
	a, b := TopicPartition{Topic: "t", Partition: 0}, TopicPartition{Topic: "t", Partition: 1}
	reg.known(id, []TopicPartition{a, b})
	wa := newWatermarkEstimator(initialWatermarkState(id, a), 0, reg)
	wb := newWatermarkEstimator(initialWatermarkState(id, b), 0, reg)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

	wa.observe(ms(10 * time.Minute)) // a's bundle reads to 10:10 and ends
	wb.observe(ms(5 * time.Minute))  // b's bundle reads to 10:05 and ends
	if got := wb.CurrentWatermark(); !got.Equal(mtime.MinTimestamp.ToTime()) {
		t.Fatalf("before either bundle is persisted the Read's watermark is %v, want the minimum", got)
	}
	wa = newWatermarkEstimator(wa.state, 0, reg) // a resumes: its output is persisted
	if got := wb.CurrentWatermark(); !got.Equal(mtime.MinTimestamp.ToTime()) {
		t.Fatalf("with b's output in flight the Read's watermark is %v, want the minimum", got)
	}
	wb = newWatermarkEstimator(wb.state, 0, reg) // b resumes
	if got := wa.CurrentWatermark().UnixMilli(); got != ms(5*time.Minute) {
		t.Errorf("both persisted: watermark %v, want b's 10:05", time.UnixMilli(got).UTC())
	}
	// A partition never read holds everything back.
	c := TopicPartition{Topic: "u", Partition: 0}
	reg.known(id, []TopicPartition{c})
	if got := wa.CurrentWatermark(); !got.Equal(mtime.MinTimestamp.ToTime()) {
		t.Errorf("with a partition not yet read the watermark is %v, want the minimum", got)
	}
}

// No partition watermark passes the processing clock plus max_future,
// whatever event time it sees.
func TestWatermarkBoundedByClock(t *testing.T) {
	reg := newWatermarkRegistry(time.Now)
	tp := TopicPartition{Topic: "t"}
	w := newWatermarkEstimator(initialWatermarkState("test-clock", tp), 2*time.Minute, reg)
	now := t0
	w.now = func() time.Time { return now }
	w.maxFuture = time.Hour.Milliseconds()
	w.observe(time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	if got, limit := w.own(), t0.Add(time.Hour); got.After(limit) {
		t.Errorf("watermark %v after a 2090 event, past the clock plus an hour, %v", got.UTC(), limit)
	}
	// Hours later, on-time event times move it on as usual.
	now = now.Add(3 * time.Hour)
	w.observe(now.UnixMilli())
	if got, want := w.own(), now.Add(-2*time.Minute); !got.Equal(want) {
		t.Errorf("watermark %v after an on-time event, want %v", got.UTC(), want.UTC())
	}
}
