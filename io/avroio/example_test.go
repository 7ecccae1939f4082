package avroio_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
)

// Write events into an Avro object container, then read them back; the
// damaged byte costs one block, reported with its reason.
func ExampleReader() {
	var buf bytes.Buffer
	w, _ := avroio.NewEventWriter(&buf, event.AppLoad, avroio.WithCodec(avroio.CodecSnappy), avroio.WithBlockSize(64))
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < 6; i++ {
		w.AppendEvent(&event.Event{Kind: event.AppLoad, AppID: "com.example", AppVersion: "1.0", Platform: "ios",
			DeviceID: []byte(fmt.Sprintf("device-%d", i)), EventTime: at, ReceivedTime: at})
	}
	w.Close()
	file := buf.Bytes()
	file[len(file)-30] ^= 0xff // damage the last block

	stats, err := avroio.NewReader().Read(avroio.Source{Path: "x.avro", Kind: event.AppLoad, Size: int64(len(file)),
		End: int64(len(file)), Data: file},
		func(evs []event.Event) { fmt.Println("block of", len(evs), "events") },
		func(d avroio.Damage) { fmt.Println("damage:", d.Reason) })
	fmt.Println(stats.Valid, "valid events;", err)
	// Output:
	// block of 2 events
	// block of 2 events
	// damage: decompress_failed
	// 4 valid events; <nil>
}
