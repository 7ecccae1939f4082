package raw

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
)

// countSink counts what a read hands out, as the batch's combine would
// consume it, without keeping it.
type countSink struct{ events, dead int64 }

func (s *countSink) Events(evs []event.Event)     { s.events += int64(len(evs)) }
func (s *countSink) DeadLetter(deadletter.Record) { s.dead++ }

// BenchmarkReadUnit is the batch's hot path: one work unit of 20 small
// snappy files of an arrival hour, as the archiver writes them, listed,
// fetched, decoded and validated. It reports events/s.
func BenchmarkReadUnit(b *testing.B) {
	dir := b.TempDir()
	const files, perFile = 20, 2500
	var splits []FileSplit
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("part-%02d.avro", i))
		writeFile(b, p, event.AppLoad, testEvents(event.AppLoad, perFile, uint64(i)), avroio.WithCodec(avroio.CodecSnappy))
		splits = append(splits, whole(b, p, event.AppLoad))
	}
	u := WorkUnit{Splits: splits}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var s countSink
		st, err := ReadUnit(context.Background(), u, ReadOptions{}, &s)
		if err != nil || s.events != files*perFile || s.dead != 0 {
			b.Fatalf("%+v, %v: %d events, %d dead letters; want %d, 0", st, err, s.events, s.dead, files*perFile)
		}
	}
	b.ReportMetric(float64(files*perFile)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
