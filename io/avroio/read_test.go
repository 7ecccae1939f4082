package avroio

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

func writeFile(t testing.TB, path string, k event.Kind, evs []event.Event, opts ...WriterOption) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewEventWriter(&buf, k, opts...)
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

func whole(t *testing.T, path string, k event.Kind) FileSplit {
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
	for _, codec := range []Codec{CodecNull, CodecDeflate, CodecSnappy} {
		for _, k := range event.Kinds {
			t.Run(codec.String()+"/"+k.String(), func(t *testing.T) {
				evs := testEvents(k, 5000, uint64(k))
				p := filepath.Join(dir, codec.String()+k.String()+".avro")
				writeFile(t, p, k, evs, WithCodec(codec), WithBlockSize(4096))
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

func TestReadBadInput(t *testing.T) {
	dir := t.TempDir()
	good := testEvents(event.AppLoad, 3000, 3)
	var splits []FileSplit
	add := func(name string, b []byte) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		splits = append(splits, FileSplit{Path: p, Kind: event.AppLoad, Size: int64(len(b)), End: int64(len(b))})
	}
	encode := func(evs []event.Event, opts ...WriterOption) []byte {
		var buf bytes.Buffer
		w, _ := NewEventWriter(&buf, event.AppLoad, append(opts, WithBlockSize(2048))...)
		for i := range evs {
			w.AppendEvent(&evs[i])
		}
		w.Close()
		return buf.Bytes()
	}
	// A good file.
	add("good.avro", encode(good[:1000]))
	// A zero-byte file.
	add("empty.avro", nil)
	// Not Avro at all.
	add("magic.avro", []byte("PAR1 this is parquet, honest"))
	// A truncated file: its last block is cut short. The complete blocks
	// before the cut are good data.
	full := encode(good[1000:2000])
	add("truncated.avro", full[:len(full)-100])
	// A foreign schema: a valid OCF of some other record.
	var fb bytes.Buffer
	fw, _ := goavro.NewOCFWriter(goavro.OCFConfig{W: &fb, Schema: `{"type":"record","name":"Invoice","fields":[{"name":"n","type":"long"}]}`})
	fw.Append([]any{map[string]any{"n": int64(1)}})
	add("foreign.avro", fb.Bytes())
	// A bad block in the middle: flip bytes inside block 3's data of a
	// snappy file (caught by the CRC) and of a null file (the sync marker of
	// a shifted block no longer lines up).
	mid := encode(good[2000:3000], WithCodec(CodecSnappy))
	h, _ := parseHeader(mid)
	offs := blockOffsets(t, mid, h)
	mid[offs[3]+20] ^= 0xff
	mid[offs[3]+21] ^= 0xff
	add("midsnappy.avro", mid)

	c := readAllSplits(t, splits...)
	want := map[string]int{
		"empty_file": 1, "bad_magic": 1, "truncated_block": 1, "foreign_schema": 1, "decompress_failed": 1,
	}
	if got := c.reasons(); !reflect.DeepEqual(got, want) {
		t.Errorf("dead-letter reasons = %v, want %v", got, want)
	}
	// Everything but the lost blocks is read: the truncated file's
	// complete blocks and the damaged file's other blocks.
	truncatedKept := countUntil(t, full, len(full)-100)
	midLost := blockCount(t, mid, h, offs[3])
	wantN := 1000 + truncatedKept + (1000 - midLost)
	if len(c.evs) != wantN {
		t.Errorf("read %d events, want %d", len(c.evs), wantN)
	}
	for _, d := range c.dead {
		if d.Source == "" || d.Detail == "" || d.Pipeline != "batch" {
			t.Errorf("dead letter lacks context: %+v", d)
		}
	}
}

// blockOffsets returns the offsets of the blocks of an in-memory OCF.
func blockOffsets(t *testing.T, b []byte, h *Header) []int64 {
	sc := newBytesScanner(b, "x")
	if _, err := sc.readHeader(); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for {
		blk, ce, err := sc.next()
		if err != nil {
			return offs
		}
		if ce != nil {
			t.Fatal(ce)
		}
		offs = append(offs, blk.Offset)
	}
}

func blockCount(t *testing.T, b []byte, h *Header, off int64) int {
	n, _, _ := event.ReadLong(b[off:])
	return int(n)
}

// countUntil counts the records in blocks that end within the first n bytes.
func countUntil(t *testing.T, b []byte, n int) int {
	sc := newBytesScanner(b[:n], "x")
	sc.readHeader()
	total := 0
	for {
		blk, ce, err := sc.next()
		if err != nil {
			return total
		}
		if ce == nil {
			total += int(blk.Count)
		}
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
	writeFile(t, p, event.HandledException, evs, WithCodec(CodecDeflate), WithBlockSize(8192))
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

// A block whose size field is damaged is skipped up to the next sync
// marker, and every block after it is still read.
func TestReadResyncAfterBadFraming(t *testing.T) {
	evs := testEvents(event.AppLoad, 2000, 13)
	for _, codec := range []Codec{CodecNull, CodecDeflate} {
		var buf bytes.Buffer
		w, _ := NewEventWriter(&buf, event.AppLoad, WithCodec(codec), WithBlockSize(2048))
		for i := range evs {
			w.AppendEvent(&evs[i])
		}
		w.Close()
		b := buf.Bytes()
		h, _ := parseHeader(b)
		offs := blockOffsets(t, b, h)
		lost := blockCount(t, b, h, offs[5])
		// Replace block 5's count and size varints with a huge size.
		_, n1, _ := event.ReadLong(b[offs[5]:])
		copy(b[offs[5]+int64(n1):], event.AppendLong(nil, 1<<27))
		p := filepath.Join(t.TempDir(), "f.avro")
		os.WriteFile(p, b, 0o644)
		for _, streamed := range []bool{false, true} {
			c := &collect{}
			opts := ReadOptions{}
			if streamed {
				opts.WholeFileMax = 1
			}
			if _, err := ReadUnit(context.Background(), WorkUnit{Splits: []FileSplit{whole(t, p, event.AppLoad)}}, opts, c); err != nil {
				t.Fatal(err)
			}
			if len(c.dead) != 1 || len(c.evs) != len(evs)-lost {
				t.Errorf("%v streamed=%v: %d events (want %d), dead %v", codec, streamed, len(c.evs), len(evs)-lost, c.dead)
			}
		}
	}
}
