package aggregate

// WindowStart returns the start of the window of sizeMs that holds ms
// (both in ms since the epoch): windows are aligned to the epoch, as
// Beam's fixed windows and lumen's buckets are. It floors, so it is right
// for times before 1970 too. Granularity.Truncate is WindowStart with the
// bucket's length.
func WindowStart(ms, sizeMs int64) int64 {
	q := ms / sizeMs
	if ms%sizeMs < 0 {
		q--
	}
	return q * sizeMs
}

// WindowKey is one AppKey in one window.
type WindowKey struct {
	Key   AppKey
	Start int64 // ms, WindowStart of the window
}

// WindowPartial is what a bundle gathered for one WindowKey: an Agg, and
// the newest time that went into it, the timestamp the partial is emitted
// at so that it lands in its window.
type WindowPartial struct {
	Agg    Agg
	Newest int64 // ms
}

// WindowPartials gathers partials per key and window of SizeMs within one
// bundle, so that a bundle hands each key and window on once: the stream's
// reader does it for its events, and its totals for the panes' deltas.
// The zero value, with SizeMs set, is ready to use.
type WindowPartials struct {
	SizeMs int64

	open    map[WindowKey]*WindowPartial
	last    *WindowPartial // events come in runs of one app and window
	lastKey WindowKey
}

// At returns the partial of k's window holding ms, creating it with
// newAgg (nil: a zero Agg) if it is the first of its window, and records
// ms as its newest time if it is.
func (w *WindowPartials) At(k AppKey, ms int64, newAgg func() Agg) *WindowPartial {
	wk := WindowKey{k, WindowStart(ms, w.SizeMs)}
	if w.last == nil || wk != w.lastKey {
		if w.last = w.open[wk]; w.last == nil {
			if w.open == nil {
				w.open = map[WindowKey]*WindowPartial{}
			}
			w.last = &WindowPartial{Newest: ms}
			if newAgg != nil {
				w.last.Agg = newAgg()
			}
			w.open[wk] = w.last
		}
		w.lastKey = wk
	}
	w.last.Newest = max(w.last.Newest, ms)
	return w.last
}

// Drain hands every partial to emit, in no particular order, and empties w.
func (w *WindowPartials) Drain(emit func(WindowKey, *WindowPartial)) {
	for k, p := range w.open {
		emit(k, p)
	}
	w.open, w.last = nil, nil
}
