package raw_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
)

// sink prints what a unit read finds.
type sink struct{}

func (sink) Events(evs []event.Event) { fmt.Println(len(evs), "events") }
func (sink) DeadLetter(r deadletter.Record) {
	fmt.Println("dead letter:", filepath.Base(r.Source), r.Reason)
}

// The batch's read: list a window's arrival partitions, pack the files
// into work units, read each unit.
func ExampleReadUnit() {
	root, _ := os.MkdirTemp("", "lumen-raw-example")
	defer os.RemoveAll(root)
	hour := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dir := raw.HourDir(root, event.Crash, hour)
	os.MkdirAll(dir, 0o755)
	f, _ := os.Create(filepath.Join(dir, "part-0.avro"))
	w, _ := avroio.NewEventWriter(f, event.Crash)
	for i := 0; i < 3; i++ {
		w.AppendEvent(&event.Event{Kind: event.Crash, AppID: "com.example", AppVersion: "1.0", Platform: "ios",
			DeviceID: []byte{byte(i)}, EventTime: hour.UnixMilli(), ReceivedTime: hour.UnixMilli(), Signature: "npe"})
	}
	w.Close()
	f.Close()
	os.WriteFile(filepath.Join(dir, "part-1.avro"), []byte("not avro"), 0o644)

	ctx := context.Background()
	files, _ := raw.ListWindow(ctx, root, hour, hour, raw.PlanOptions{})
	fmt.Println(filepath.Base(raw.DayPrefix(root, event.Crash, hour)), "holds", len(files), "files")
	for _, u := range raw.Pack(files, raw.PlanOptions{}) {
		st, err := raw.ReadUnit(ctx, u, raw.ReadOptions{}, sink{})
		fmt.Println(st.Files, "files read;", err)
	}
	// Output:
	// dt=2026-11-20 holds 2 files
	// 3 events
	// 1 files read; <nil>
	// dead letter: part-1.avro bad_magic
	// 1 files read; <nil>
}
