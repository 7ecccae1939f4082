package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The population: apps with Zipf popularity, each with a few versions
// released over the period, and devices that adopt new versions with a lag.
type model struct {
	cfg  Config
	apps []*app
}

type app struct {
	id        string
	weight    float64
	versions  []version
	devices   []device
	crashSigs int
}

type version struct {
	name       string
	releaseDay int     // days after Start; <= 0 means before the period
	crashRate  float64 // crashes per load
	handled    float64 // handled exceptions per load
}

type device struct {
	id       []byte
	platform string
	lagDays  int     // adoption lag after a release
	active   float64 // probability of being active on a day
	offline  bool    // sometimes uploads late
	skew     int64   // clock ahead by this many ms (0 = none)
}

var appWords = []string{
	"photon", "quill", "harbor", "maple", "cinder", "orbit", "tundra", "lyric", "ember", "falcon",
	"glacier", "juniper", "kelp", "lumen", "meadow", "nimbus", "opal", "prism", "quasar", "raven",
	"sable", "thistle", "umber", "vortex", "willow", "xenon", "yarrow", "zephyr", "aspen", "basalt",
	"cobalt", "delta", "echo", "fjord", "garnet", "heron", "iris", "jade", "kestrel", "lotus",
	"marble", "nectar", "onyx", "pebble", "quartz", "ripple", "sierra", "topaz", "umbra", "velvet",
}

// eventsPerDeviceDay is the expected number of events a device produces per
// day under the rates below; it sizes the population from Config.Events.
const eventsPerDeviceDay = 0.6 * 2.5 * (1 + 0.02 + 0.04)

// SpikeApp and SpikeVersion name the app version whose crash rate spikes
// (the demo's "needs a rollback" case): the second most popular app's newest
// version.
func spikeApp(i int) bool { return i == 1 }

func newModel(cfg Config) *model {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f64656c))
	m := &model{cfg: cfg}
	var total float64
	for i := 0; i < cfg.Apps; i++ {
		total += 1 / math.Pow(float64(i+1), cfg.ZipfS)
	}
	devices := float64(cfg.Events) / (float64(cfg.Days) * eventsPerDeviceDay)
	for i := 0; i < cfg.Apps; i++ {
		a := &app{weight: 1 / math.Pow(float64(i+1), cfg.ZipfS) / total}
		a.id = "com." + appWords[i%len(appWords)] + ".app"
		if i >= len(appWords) {
			a.id += fmt.Sprint(i / len(appWords))
		}
		nv := 3 + i%3
		names := []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"}
		for j := 0; j < nv; j++ {
			v := version{
				name:       names[j],
				releaseDay: j * cfg.Days / nv,
				crashRate:  0.01 + 0.02*rng.Float64(),
				handled:    0.02 + 0.04*rng.Float64(),
			}
			if j == 0 {
				v.releaseDay = -1000
			}
			if spikeApp(i) && j == nv-1 {
				v.crashRate = 0.25
			}
			a.versions = append(a.versions, v)
		}
		a.crashSigs = 4 + rng.IntN(8)
		n := max(3, int(math.Round(devices*a.weight)))
		a.devices = make([]device, n)
		for d := range a.devices {
			id := make([]byte, 16)
			for b := 0; b < 16; b += 8 {
				u := rng.Uint64()
				for k := 0; k < 8; k++ {
					id[b+k] = byte(u >> (8 * k))
				}
			}
			dev := device{
				id:       id,
				platform: []string{"android", "android", "ios"}[rng.IntN(3)],
				lagDays:  int(rng.ExpFloat64() * 2),
				active:   0.3 + 0.6*rng.Float64(),
				offline:  rng.Float64() < cfg.OfflineShare,
			}
			if rng.Float64() < cfg.SkewShare {
				dev.skew = int64(60_000 + rng.Float64()*36*3_600_000)
			}
			a.devices[d] = dev
		}
		m.apps = append(m.apps, a)
	}
	return m
}

// versionOn returns the version a device runs on a day.
func (a *app) versionOn(d *device, day int) int {
	v := 0
	for j := range a.versions {
		if a.versions[j].releaseDay+d.lagDays <= day {
			v = j
		}
	}
	return v
}

// diurnal hour weights: a quiet night and a busy evening, UTC.
var hourWeights = func() [24]float64 {
	var w [24]float64
	for h := range w {
		w[h] = 1 + 0.8*math.Sin(2*math.Pi*float64(h-12)/24)
	}
	return w
}()

var hourCDF = func() [24]float64 {
	var c [24]float64
	var sum float64
	for h, w := range hourWeights {
		sum += w
		c[h] = sum
	}
	for h := range c {
		c[h] /= sum
	}
	return c
}()

// diurnalOffset samples a time of day in ms.
func diurnalOffset(rng *rand.Rand) int64 {
	u := rng.Float64()
	h := 0
	for h < 23 && hourCDF[h] < u {
		h++
	}
	return int64(h)*3_600_000 + rng.Int64N(3_600_000)
}

var dayMillis = int64(24 * time.Hour / time.Millisecond)
