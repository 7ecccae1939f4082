package raw

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
)

type collect struct {
	evs  []event.Event
	dead []deadletter.Record
}

func (c *collect) Events(evs []event.Event) {
	for _, e := range evs {
		c.evs = append(c.evs, e.Clone())
	}
}
func (c *collect) DeadLetter(r deadletter.Record) { c.dead = append(c.dead, r) }

func (c *collect) reasons() map[string]int {
	m := map[string]int{}
	for _, d := range c.dead {
		m[d.Reason]++
	}
	return m
}

func testEvents(k event.Kind, n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]event.Event, n)
	for i := range out {
		dev := make([]byte, 16)
		for j := range dev {
			dev[j] = byte(rng.Uint32())
		}
		out[i] = event.Event{Kind: k, AppID: fmt.Sprintf("app-%d", rng.IntN(5)), AppVersion: "1.0",
			Platform: "ios", DeviceID: dev, EventTime: base + int64(i)*1000, ReceivedTime: base + int64(i)*1000 + 5}
		if k.HasSignature() {
			out[i].Signature = "sig"
		}
	}
	return out
}

func writeFile(t testing.TB, path string, k event.Kind, evs []event.Event, opts ...avroio.WriterOption) {
	t.Helper()
	var buf bytes.Buffer
	w, err := avroio.NewEventWriter(&buf, k, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.AppendEvent(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readAllSplits(t *testing.T, splits ...FileSplit) *collect {
	t.Helper()
	c := &collect{}
	if _, err := ReadUnit(context.Background(), WorkUnit{Splits: splits}, ReadOptions{}, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func whole(t testing.TB, path string, k event.Kind) FileSplit {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return FileSplit{Path: path, Kind: k, Size: fi.Size(), End: fi.Size()}
}

func sameEvents(t *testing.T, got, want []event.Event) {
	t.Helper()
	key := func(e event.Event) string { return fmt.Sprintf("%d/%x/%d", e.Kind, e.DeviceID, e.EventTime) }
	sort.Slice(got, func(i, j int) bool { return key(got[i]) < key(got[j]) })
	want = slices.Clone(want)
	sort.Slice(want, func(i, j int) bool { return key(want[i]) < key(want[j]) })
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d: got %v want %v", i, got[i], want[i])
		}
	}
}

func TestReadCodecs(t *testing.T) {
	dir := t.TempDir()
	for _, codec := range []avroio.Codec{avroio.CodecNull, avroio.CodecDeflate, avroio.CodecSnappy} {
		for _, k := range event.Kinds {
			t.Run(codec.String()+"/"+k.String(), func(t *testing.T) {
				evs := testEvents(k, 5000, uint64(k))
				p := filepath.Join(dir, codec.String()+k.String()+".avro")
				writeFile(t, p, k, evs, avroio.WithCodec(codec), avroio.WithBlockSize(4096))
				c := readAllSplits(t, whole(t, p, k))
				if len(c.dead) != 0 {
					t.Fatalf("dead letters: %v", c.dead)
				}
				sameEvents(t, c.evs, evs)
			})
		}
	}
}

// Files from goavro's own OCF writer, with a writer schema that has another
// field order and an extra field, in each codec, take the general path.
func TestReadResolvedSchema(t *testing.T) {
	schema := `{"type":"record","name":"Crash","namespace":"com.vendor","fields":[
	  {"name":"received_time","type":{"type":"long","logicalType":"timestamp-millis"}},
	  {"name":"session","type":["null","string"],"default":null},
	  {"name":"device_id","type":"bytes"},
	  {"name":"signature","type":"string"},
	  {"name":"event_time","type":"long"},
	  {"name":"app_id","type":"string"},
	  {"name":"platform","type":"string"},
	  {"name":"app_version","type":"string"}]}`
	dir := t.TempDir()
	evs := testEvents(event.Crash, 2000, 11)
	for _, codec := range []string{"null", "deflate", "snappy"} {
		t.Run(codec, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &buf, Schema: schema, CompressionName: codec})
			if err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				m := event.ToNative(&evs[i])
				m["event_time"] = evs[i].EventTime
				m["session"] = goavro.Union("string", "s")
				if err := w.Append([]any{m}); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(dir, codec+".avro")
			os.WriteFile(p, buf.Bytes(), 0o644)
			c := readAllSplits(t, whole(t, p, event.Crash))
			if len(c.dead) != 0 {
				t.Fatalf("dead letters: %v", c.dead)
			}
			sameEvents(t, c.evs, evs)
		})
	}
}

func TestReadInvalidRecords(t *testing.T) {
	evs := testEvents(event.AppLoad, 100, 5)
	evs[10].AppID = ""
	evs[20].DeviceID = nil
	evs[30].EventTime = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli()
	evs[40].ReceivedTime = 42
	p := filepath.Join(t.TempDir(), "f.avro")
	writeFile(t, p, event.AppLoad, evs)
	c := readAllSplits(t, whole(t, p, event.AppLoad))
	want := map[string]int{"empty_app_id": 1, "empty_device_id": 1, "event_time_before_2000": 1, "received_time_before_2000": 1}
	if got := c.reasons(); !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %v, want %v", got, want)
	}
	if len(c.evs) != 96 {
		t.Errorf("valid events = %d, want 96", len(c.evs))
	}
	for _, d := range c.dead {
		var e event.Event
		if _, err := event.NewDecoder().Decode(event.AppLoad, d.Payload, &e); err != nil || d.Index < 0 {
			t.Errorf("dead letter payload is not the record: %v %+v", err, d)
		}
	}
}

// Splitting a file into ranges reads every record exactly once, whatever
// the split points, including ranges that hold no block start.
func TestReadSplits(t *testing.T) {
	evs := testEvents(event.HandledException, 20000, 9)
	p := filepath.Join(t.TempDir(), "big.avro")
	writeFile(t, p, event.HandledException, evs, avroio.WithCodec(avroio.CodecDeflate), avroio.WithBlockSize(8192))
	f := whole(t, p, event.HandledException)
	for _, n := range []int64{1, 2, 3, 7, 50, 400} {
		step := f.Size/n + 1
		var splits []FileSplit
		for off := int64(0); off < f.Size; off += step {
			s := f
			s.Start, s.End = off, min(off+step, f.Size)
			splits = append(splits, s)
		}
		c := &collect{}
		// SeekThreshold 1 exercises the ranged open too.
		if _, err := ReadUnit(context.Background(), WorkUnit{Splits: splits}, ReadOptions{SeekThreshold: 1}, c); err != nil {
			t.Fatal(err)
		}
		if len(c.dead) != 0 {
			t.Fatalf("%d splits: dead letters %v", n, c.dead)
		}
		sameEvents(t, c.evs, evs)
	}
}

func TestPack(t *testing.T) {
	var files []FileSplit
	for i := 0; i < 1000; i++ {
		files = append(files, FileSplit{Path: fmt.Sprintf("f%04d", i), Size: 2000, End: 2000})
	}
	files = append(files, FileSplit{Path: "huge", Size: 1 << 30, End: 1 << 30})
	units := Pack(files, PlanOptions{TargetBytes: 64 << 20, OpenCost: 512 << 10, Parallelism: 4})
	seen := map[string]int64{}
	for _, u := range units {
		var cost int64
		for _, s := range u.Splits {
			seen[s.Path] += s.End - s.Start
			cost += s.End - s.Start + 512<<10
		}
		if cost > 64<<20 && len(u.Splits) > 1 {
			t.Errorf("unit %d costs %d > target", u.ID, cost)
		}
	}
	for _, f := range files {
		if seen[f.Path] != f.Size {
			t.Fatalf("%s: covered %d of %d bytes", f.Path, seen[f.Path], f.Size)
		}
	}
	// 1 GiB in 64 MiB ranges, and 1000 small files at ~127 per unit.
	if len(units) < 16+7 || len(units) > 16+9 {
		t.Errorf("%d units", len(units))
	}
	if again := Pack(files, PlanOptions{TargetBytes: 64 << 20, OpenCost: 512 << 10, Parallelism: 4}); !reflect.DeepEqual(again, units) {
		t.Error("Pack is not deterministic")
	}
}

// The time bounds follow the bound's own time, the received time: an
// event whose device clock is days ahead, received within the bound, is
// counted and moves Latest to its received time only; one received beyond
// the bound sets FutureFrom to its received time. With the later of the
// two times, a rollup that dead-lettered an event received at R with a
// clock ahead at E > R claimed to hold at clocks between R and E, where
// reading raw counts it (issue 20).
func TestReadTimeBoundsAreReceivedTimes(t *testing.T) {
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixMilli()
	day := int64(24 * time.Hour / time.Millisecond)
	evs := testEvents(event.AppLoad, 3, 9)
	evs[0].EventTime, evs[0].ReceivedTime = now+3*day, now-1000        // clock ahead, received in time
	evs[1].EventTime, evs[1].ReceivedTime = now+5*day, now+2*3600*1000 // received 2 h ahead: future_time
	evs[2].EventTime, evs[2].ReceivedTime = now-5000, now-4000
	p := filepath.Join(t.TempDir(), "f.avro")
	writeFile(t, p, event.AppLoad, evs)
	c := &collect{}
	st, err := ReadUnit(context.Background(), WorkUnit{Splits: []FileSplit{whole(t, p, event.AppLoad)}},
		ReadOptions{NowMs: now, MaxFuture: time.Hour}, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.evs) != 2 || c.reasons()["future_time"] != 1 {
		t.Fatalf("%d events, dead letters %v; want 2 and one future_time", len(c.evs), c.reasons())
	}
	if st.Latest != now-1000 || st.FutureFrom != now+2*3600*1000 {
		t.Errorf("Latest %d, FutureFrom %d; want the received times %d and %d", st.Latest, st.FutureFrom, now-1000, now+2*3600*1000)
	}
}
