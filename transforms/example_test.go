package transforms_test

import (
	"fmt"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/transforms"
)

func init() {
	register.Function1x2(partialOf)
	register.Function1x1(rowString)
}

// partialOf pre-aggregates one reader's events of an app (as
// aggregate.Partials or kafkaio.ReadPartials would).
func partialOf(devices []string) (aggregate.AppKey, aggregate.Agg) {
	fn := aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14}
	a := fn.CreateAccumulator()
	at := time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC).UnixMilli()
	for _, d := range devices {
		a = fn.AddEvent(a, &event.Event{Kind: event.AppLoad, AppID: "com.example", AppVersion: "1.0", Platform: "ios",
			DeviceID: []byte(d), EventTime: at, ReceivedTime: at})
	}
	return aggregate.AppKey{Kind: event.AppLoad, AppID: "com.example"}, a
}

func rowString(r aggregate.CountRow) string { return r.String() }

// Partials of the same app from two readers merge into one Agg per app,
// which CountRows and UserRows turn into rows for the stores.
func ExampleMergePartials() {
	p, s := beam.NewPipelineWithRoot()
	partials := beam.ParDo(s, partialOf, beam.Create(s, []string{"d1", "d2"}, []string{"d1"}))
	merged := transforms.MergePartials(s, partials, aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14})
	passert.Equals(s, beam.ParDo(s, rowString, transforms.CountRows(s, merged, aggregate.Hour, aggregate.Day)),
		`app_load/com.example/"1.0" hour 2026-11-20T10:00:00Z = 3`, `app_load/com.example/"" hour 2026-11-20T10:00:00Z = 3`,
		`app_load/com.example/"1.0" day 2026-11-20T00:00:00Z = 3`, `app_load/com.example/"" day 2026-11-20T00:00:00Z = 3`)
	passert.Count(s, transforms.UserRows(s, merged), "user rows", 2)
	fmt.Println(ptest.Run(p))
	// Output:
	// <nil>
}
