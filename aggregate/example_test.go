package aggregate_test

import (
	"fmt"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

// Both layers build partial aggregates with the CombineFn's AddEvent and
// merge them with its AddInput and MergeAccumulators; rows for the stores
// come out of the merged Agg.
func ExampleCombineFn() {
	fn := aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14}
	at := time.Date(2026, 11, 20, 10, 15, 0, 0, time.UTC).UnixMilli()
	load := func(version, device string) *event.Event {
		return &event.Event{Kind: event.AppLoad, AppID: "com.example", AppVersion: version, Platform: "ios",
			DeviceID: []byte(device), EventTime: at, ReceivedTime: at + 500}
	}
	// Two readers' partials of the same app.
	p1 := fn.CreateAccumulator()
	p1 = fn.AddEvent(p1, load("1.0", "d1"))
	p1 = fn.AddEvent(p1, load("1.1", "d2"))
	p2 := fn.AddEvent(fn.CreateAccumulator(), load("1.0", "d1"))

	merged, _ := fn.AddInput(fn.CreateAccumulator(), p1)
	merged, _ = fn.MergeAccumulators(merged, p2)
	key := aggregate.AppKey{Kind: event.AppLoad, AppID: "com.example"}
	counts, _ := merged.CountRows(key, aggregate.Hour)
	for _, r := range counts {
		fmt.Println(r)
	}
	users, _ := merged.UserRows(key)
	for _, u := range users {
		fmt.Printf("%q on %s: %d devices\n", u.AppVersion, u.DayTime().Format(time.DateOnly), u.Estimate)
	}
	// Output:
	// app_load/com.example/"" hour 2026-11-20T10:00:00Z = 3
	// app_load/com.example/"1.0" hour 2026-11-20T10:00:00Z = 2
	// app_load/com.example/"1.1" hour 2026-11-20T10:00:00Z = 1
	// "" on 2026-11-20: 2 devices
	// "1.0" on 2026-11-20: 1 devices
	// "1.1" on 2026-11-20: 1 devices
}

// Partials places each event against a batch run's window and aggregates
// those inside it per (kind, app); Drain hands the partials on.
func ExamplePartials() {
	window := aggregate.NewDayWindow(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), 2)
	p := aggregate.NewPartials(window, aggregate.Hour, 14)
	for _, day := range []int{20, 19, 10} { // the 10th is before the window
		at := time.Date(2026, 11, day, 9, 0, 0, 0, time.UTC).UnixMilli()
		p.Add(&event.Event{Kind: event.Crash, AppID: "com.example", AppVersion: "2.0", Platform: "android",
			DeviceID: []byte("d1"), EventTime: at, ReceivedTime: at, Signature: "npe"})
	}
	stats := p.Drain(func(k aggregate.AppKey, a aggregate.Agg) { fmt.Println(k, "holds", a.Total(), "events") })
	fmt.Printf("counted %d, too old %d\n", stats[event.Crash].Counted, stats[event.Crash].TooOld)
	// Output:
	// crash/com.example holds 2 events
	// counted 2, too old 1
}
