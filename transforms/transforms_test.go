package transforms

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

func TestMain(m *testing.M) { ptest.MainWithDefault(m, "prism") }

func init() {
	register.Function1x3(splitPair)
}

var day0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// genEvents makes events over a few apps, versions and days, some of them
// clock-skewed.
func genEvents(n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]event.Event, n)
	for i := range out {
		k := event.Kinds[rng.IntN(3)]
		et := day0.UnixMilli() + rng.Int64N(3*86_400_000)
		rt := et + rng.Int64N(3_600_000)
		if rng.IntN(20) == 0 {
			rt = et - rng.Int64N(7_200_000) // device clock ahead
		}
		out[i] = event.Event{Kind: k, AppID: fmt.Sprintf("app%d", rng.IntN(3)), AppVersion: fmt.Sprintf("1.%d", rng.IntN(3)),
			Platform: "android", DeviceID: []byte(fmt.Sprintf("dev-%d", rng.IntN(400))), EventTime: et, ReceivedTime: rt}
		if k.HasSignature() {
			out[i].Signature = "s"
		}
	}
	return out
}

// bucketOf is the bucket time of DESIGN §3, computed here without
// aggregate's code: the earlier of event and received time.
func bucketOf(e event.Event) time.Time {
	return time.UnixMilli(min(e.EventTime, e.ReceivedTime)).UTC()
}

// exactCounts is the ground truth: each event counts once for its version
// and once for all versions, in its bucket at g.
func exactCounts(evs []event.Event, g aggregate.Granularity) []any {
	type key struct {
		k      event.Kind
		app, v string
		b      int64
	}
	m := map[key]int64{}
	for _, e := range evs {
		b := bucketOf(e).Truncate(time.Duration(g.Millis()) * time.Millisecond).UnixMilli()
		m[key{e.Kind, e.AppID, e.AppVersion, b}]++
		m[key{e.Kind, e.AppID, "", b}]++
	}
	var rows []any
	for k, n := range m {
		rows = append(rows, aggregate.CountRow{Kind: k.k, AppID: k.app, AppVersion: k.v, Gran: g, Bucket: k.b, Count: n})
	}
	return rows
}

// exactUsers is the ground truth of the daily sketches: below a few
// thousand devices a p=14 sketch is sparse and its estimate exact, and its
// bytes are those of a sketch of the same devices built in any order.
func exactUsers(evs []event.Event) []any {
	type key struct {
		k      event.Kind
		app, v string
		d      int64
	}
	devices := map[key]map[string]bool{}
	events := map[key]int64{}
	for _, e := range evs {
		d := bucketOf(e).Truncate(24 * time.Hour).UnixMilli()
		for _, v := range []string{e.AppVersion, ""} {
			k := key{e.Kind, e.AppID, v, d}
			if devices[k] == nil {
				devices[k] = map[string]bool{}
			}
			devices[k][string(e.DeviceID)] = true
			events[k]++
		}
	}
	var want []any
	for k, devs := range devices {
		sk := hll.MustNew(14)
		for d := range devs {
			sk.Add([]byte(d))
		}
		b, _ := sk.MarshalBinary()
		want = append(want, aggregate.UserRow{Kind: k.k, AppID: k.app, AppVersion: k.v, Day: k.d, Sketch: b, Estimate: int64(len(devs)), Events: events[k]})
	}
	return want
}

// batchPartials pre-aggregates evs the batch's way, in chunks (as work
// units would), and encodes the partials, so decoding them in a pipeline
// exercises the coder as a shuffle does.
func batchPartials(t *testing.T, evs []event.Event, chunk int) []aggPair {
	t.Helper()
	w := aggregate.DayWindow{First: day0.AddDate(0, 0, -1), Last: day0.AddDate(0, 0, 3)}
	var parts []aggPair
	for lo := 0; lo < len(evs); lo += chunk {
		p := aggregate.NewPartials(w, aggregate.Hour, 14)
		for i := lo; i < min(lo+chunk, len(evs)); i++ {
			p.Add(&evs[i])
		}
		p.Drain(func(k aggregate.AppKey, a aggregate.Agg) {
			b, err := aggregate.EncodeAgg(a)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, aggPair{K: k, V: b})
		})
	}
	return parts
}

// aggPair carries an encoded partial into a test pipeline.
type aggPair struct {
	K aggregate.AppKey
	V []byte
}

func splitPair(p aggPair) (aggregate.AppKey, aggregate.Agg, error) {
	a, err := aggregate.DecodeAgg(p.V)
	return p.K, a, err
}

// MergePartials over partials of arbitrary chunks gives exactly the counts
// and byte-identical sketches of the ground truth, however the input was
// split: the batch's combine, end to end through a shuffle.
func TestMergePartials(t *testing.T) {
	evs := genEvents(5000, 3)
	for _, chunk := range []int{5000, 700, 37} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			p, s := beam.NewPipelineWithRoot()
			partials := beam.ParDo(s, splitPair, beam.CreateList(s, batchPartials(t, evs, chunk)))
			merged := MergePartials(s, partials, aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14})
			passert.Equals(s, CountRows(s, merged, aggregate.Hour), exactCounts(evs, aggregate.Hour)...)
			passert.Equals(s, CountRows(s, merged, aggregate.Day), exactCounts(evs, aggregate.Day)...)
			passert.Equals(s, UserRows(s, merged), exactUsers(evs)...)
			ptest.RunAndValidate(t, p)
		})
	}
}

// CountRows refuses a granularity finer than the Agg's, and the pipeline
// fails with the reason rather than writing wrong rows.
func TestCountRowsFinerThanAggFails(t *testing.T) {
	p, s := beam.NewPipelineWithRoot()
	partials := beam.ParDo(s, splitPair, beam.CreateList(s, batchPartials(t, genEvents(10, 1), 10)))
	CountRows(s, partials, aggregate.Minute)
	if err := ptest.Run(p); err == nil {
		t.Fatal("minute rows from hour partials did not fail")
	}
}
