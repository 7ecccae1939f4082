package gen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/lumenhq/lumen/event"
)

// Record is one generated record: the event as written, when the collector
// received it (which decides its arrival partition), and, for a damaged
// record, the validation failure lumen must report.
type Record struct {
	Event   event.Event
	Arrival int64
	Invalid event.Reason
}

// Sink receives generated records. DayDone(d) promises that no later record
// arrives before d+1 day, so a file writer can flush those hours.
type Sink interface {
	Record(r *Record) error
	DayDone(day time.Time) error
}

// minTime2000 mirrors DESIGN §1's lower bound; 1999 timestamps are invalid.
var time1999 = time.Date(1999, 6, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

// Generate produces the dataset of cfg, in true-time order day by day, into
// sink. Records arriving at or after cfg.End() are not produced.
func Generate(cfg Config, sink Sink) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	m := newModel(cfg)
	g := &generator{cfg: cfg, m: m, sink: sink, rng: rand.New(rand.NewPCG(cfg.Seed, 0x67656e))}
	start, end := cfg.Start.UnixMilli(), cfg.End().UnixMilli()
	g.end = end

	// Events from before the window that arrive inside it (and inside the
	// generated days): too old.
	winStart := cfg.WindowStart().UnixMilli()
	firstArrival := max(start, winStart)
	for i := 0; i < cfg.TooOld && !cfg.Punctual; i++ {
		a := g.pickApp()
		d := &a.devices[g.rng.IntN(len(a.devices))]
		happened := winStart - 3_600_000 - g.rng.Int64N(6*dayMillis)
		arrival := firstArrival + g.rng.Int64N(min(36*3_600_000, end-firstArrival))
		ev := event.Event{Kind: event.AppLoad, AppID: a.id, AppVersion: a.versions[0].name,
			Platform: d.platform, DeviceID: d.id, EventTime: happened, ReceivedTime: arrival}
		if err := g.emit(ev, arrival); err != nil {
			return err
		}
	}
	for day := 0; day < cfg.Days; day++ {
		dayStart := start + int64(day)*dayMillis
		for ai, a := range m.apps {
			for di := range a.devices {
				if err := g.deviceDay(ai, a, &a.devices[di], day, dayStart); err != nil {
					return err
				}
			}
		}
		if err := sink.DayDone(time.UnixMilli(dayStart).UTC()); err != nil {
			return err
		}
	}
	return nil
}

type generator struct {
	cfg  Config
	m    *model
	sink Sink
	rng  *rand.Rand
	end  int64
	rec  Record
}

// timeOfDay samples when, in ms after midnight, an app is loaded.
func (g *generator) timeOfDay() int64 {
	if g.cfg.Span > 0 {
		return g.rng.Int64N(g.cfg.Span.Milliseconds())
	}
	return diurnalOffset(g.rng)
}

func (g *generator) pickApp() *app {
	u := g.rng.Float64()
	for _, a := range g.m.apps {
		if u < a.weight {
			return a
		}
		u -= a.weight
	}
	return g.m.apps[0]
}

// deviceDay generates one device's events for one day.
func (g *generator) deviceDay(ai int, a *app, d *device, day int, dayStart int64) error {
	rng := g.rng
	if rng.Float64() >= d.active {
		return nil
	}
	vi := a.versionOn(d, day)
	v := a.versions[vi]
	// An offline device uploads the whole day's events at once, hours to
	// days later.
	var upload int64
	if d.offline && rng.Float64() < 0.4 && !g.cfg.Punctual {
		upload = dayStart + dayMillis + int64(rng.ExpFloat64()*20*3_600_000)
	}
	loads := 1
	for rng.Float64() < 0.6 {
		loads++
	}
	for l := 0; l < loads; l++ {
		t := dayStart + g.timeOfDay()
		base := event.Event{AppID: a.id, AppVersion: v.name, Platform: d.platform, DeviceID: d.id}
		ev := base
		ev.Kind = event.AppLoad
		if err := g.deliver(ev, d, t, upload); err != nil {
			return err
		}
		if rng.Float64() < v.crashRate {
			ev := base
			ev.Kind = event.Crash
			ev.Signature = fmt.Sprintf("crash-%s-%02d", v.name, rng.IntN(a.crashSigs))
			if err := g.deliver(ev, d, t+rng.Int64N(300_000), upload); err != nil {
				return err
			}
		}
		if rng.Float64() < v.handled {
			ev := base
			ev.Kind = event.HandledException
			ev.Signature = fmt.Sprintf("handled-%02d", rng.IntN(6))
			if err := g.deliver(ev, d, t+rng.Int64N(600_000), upload); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver stamps the device and collector times of an event that truly
// happened at t.
func (g *generator) deliver(ev event.Event, d *device, t, upload int64) error {
	rng := g.rng
	arrival := t + 50 + int64(rng.ExpFloat64()*1500)
	if rng.Float64() < 0.002 && !g.cfg.Punctual {
		arrival += int64(rng.ExpFloat64() * 180_000)
	}
	if upload > arrival {
		arrival = upload + rng.Int64N(60_000)
	}
	ev.EventTime = t + d.skew
	ev.ReceivedTime = arrival
	return g.emit(ev, arrival)
}

func (g *generator) emit(ev event.Event, arrival int64) error {
	if arrival >= g.end {
		return nil
	}
	g.rec = Record{Event: ev, Arrival: arrival}
	if g.cfg.InvalidShare > 0 && g.rng.Float64() < g.cfg.InvalidShare {
		r := &g.rec
		defects := 4
		if g.cfg.BadSignatures && r.Event.Kind.HasSignature() {
			defects = 7
		}
		switch g.rng.IntN(defects) {
		case 0:
			r.Event.AppID, r.Invalid = "", event.ReasonEmptyAppID
		case 1:
			r.Event.DeviceID, r.Invalid = nil, event.ReasonEmptyDeviceID
		case 2:
			r.Event.EventTime, r.Invalid = time1999, event.ReasonEventTimeBefore2000
		case 3:
			r.Event.ReceivedTime, r.Invalid = time1999, event.ReasonReceivedTimeBefore2000
		case 4:
			r.Event.Signature, r.Invalid = "", event.ReasonEmptySignature
		case 5:
			r.Event.Signature, r.Invalid = strings.Repeat(r.Event.Signature+"|", 10<<10)[:10<<10], event.ReasonSignatureTooLong
		case 6:
			r.Event.Signature, r.Invalid = r.Event.Signature+" \xc3(", event.ReasonSignatureNotUTF8
		}
	}
	return g.sink.Record(&g.rec)
}
