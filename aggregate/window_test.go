package aggregate

import (
	"testing"

	"github.com/lumenhq/lumen/event"
)

func TestWindowStart(t *testing.T) {
	for _, c := range []struct{ ms, size, want int64 }{
		{0, 60_000, 0},
		{59_999, 60_000, 0},
		{60_000, 60_000, 60_000},
		{-1, 60_000, -60_000}, // floors before 1970
		{-60_000, 60_000, -60_000},
		{-60_001, 60_000, -120_000},
		{1_764_547_200_123, 3_600_000, 1_764_547_200_000},
	} {
		if got := WindowStart(c.ms, c.size); got != c.want {
			t.Errorf("WindowStart(%d, %d) = %d, want %d", c.ms, c.size, got, c.want)
		}
		// The same placement as a division that floors by hand.
		if q := c.ms / c.size; (c.ms%c.size < 0 && (q-1)*c.size != c.want) || (c.ms%c.size >= 0 && q*c.size != c.want) {
			t.Errorf("case %+v disagrees with floor division", c)
		}
	}
	if got, want := Hour.Truncate(-1), int64(-3_600_000); got != want {
		t.Errorf("Hour.Truncate(-1) = %d, want %d", got, want)
	}
}

func TestWindowPartials(t *testing.T) {
	a := AppKey{Kind: event.AppLoad, AppID: "a"}
	b := AppKey{Kind: event.Crash, AppID: "a"}
	w := WindowPartials{SizeMs: 60_000}
	created := 0
	newAgg := func() Agg { created++; return NewAgg(Hour, 14) }
	// a's first minute, b, a's first minute again (after the run of a ended),
	// then a's second minute: three partials.
	adds := map[*WindowPartial]int{}
	for _, e := range []struct {
		k  AppKey
		ms int64
	}{{a, 1_000}, {a, 5_000}, {b, 2_000}, {a, 59_999}, {a, 60_000}, {a, 3_000}} {
		adds[w.At(e.k, e.ms, newAgg)]++
	}
	if created != 3 {
		t.Errorf("%d partials created, want 3", created)
	}
	got := map[WindowKey]*WindowPartial{}
	w.Drain(func(k WindowKey, p *WindowPartial) { got[k] = p })
	want := map[WindowKey]struct {
		newest int64
		n      int
	}{{a, 0}: {59_999, 4}, {b, 0}: {2_000, 1}, {a, 60_000}: {60_000, 1}}
	if len(got) != len(want) {
		t.Fatalf("drained %d partials, want %d: %v", len(got), len(want), got)
	}
	for k, wp := range want {
		p, ok := got[k]
		if !ok || p.Newest != wp.newest || adds[p] != wp.n || p.Agg.Gran != Hour {
			t.Errorf("partial %v = %+v (ok %v, %d adds), want newest %d and %d adds", k, p, ok, adds[p], wp.newest, wp.n)
		}
	}
	n := 0
	w.Drain(func(WindowKey, *WindowPartial) { n++ })
	if n != 0 {
		t.Errorf("a drained WindowPartials drained %d more", n)
	}
	if p := w.At(a, 0, nil); p.Agg.cells != nil || p.Agg.Gran != 0 || p.Newest != 0 {
		t.Errorf("a nil newAgg gives %+v, want a zero Agg", p)
	}
}
