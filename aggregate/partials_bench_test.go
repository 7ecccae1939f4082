package aggregate

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
)

// benchEvents is a batch-like mix: 50 apps (Zipf-ish), 3-5 versions, a
// month of event times, 16-byte device ids.
func benchEvents(n, days int) []event.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	day0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	apps := make([]string, 50)
	for i := range apps {
		apps[i] = fmt.Sprintf("com.app%d.app", i)
	}
	versions := []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"}
	out := make([]event.Event, n)
	for i := range out {
		a := int(float64(len(apps)) * rng.Float64() * rng.Float64())
		id := make([]byte, 16)
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		et := day0 + rng.Int64N(int64(days)*86_400_000)
		out[i] = event.Event{Kind: event.Kinds[rng.IntN(3)], AppID: apps[a], AppVersion: versions[rng.IntN(3+a%3)],
			Platform: "android", DeviceID: id, EventTime: et, ReceivedTime: et + 1000}
	}
	return out
}

func BenchmarkPartialsAdd(b *testing.B) {
	for _, days := range []int{1, 30} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			evs := benchEvents(1<<20, days)
			w := NewDayWindow(time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC), 30)
			p := NewPartials(w, Hour, 14)
			for i := range evs { // warm: every cell and sketch exists
				p.Add(&evs[i])
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.Add(&evs[i&(len(evs)-1)])
			}
		})
	}
}
