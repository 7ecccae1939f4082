package avroio

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
)

// collect gathers what Reader.Read finds.
type collect struct {
	evs    []event.Event
	damage []Damage
}

func (c *collect) read(t *testing.T, src Source) {
	t.Helper()
	_, err := NewReader().Read(src, func(evs []event.Event) {
		for _, e := range evs {
			c.evs = append(c.evs, e.Clone())
		}
	}, func(d Damage) { c.damage = append(c.damage, d) })
	if err != nil {
		t.Fatal(err)
	}
}

func (c *collect) reasons() map[string]int {
	m := map[string]int{}
	for _, d := range c.damage {
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
	}
	return out
}

// Damaged files lose only what is damaged: each kind of damage is
// reported with its reason, and every good block around it is read.
func TestReadBadInput(t *testing.T) {
	dir := t.TempDir()
	good := testEvents(event.AppLoad, 3000, 3)
	c := &collect{}
	add := func(name string, b []byte) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		c.read(t, Source{Path: p, Kind: event.AppLoad, Size: int64(len(b)), End: int64(len(b)), Data: b})
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
	for _, d := range c.damage {
		if d.Detail == "" {
			t.Errorf("damage without detail: %+v", d)
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
		for _, streamed := range []bool{false, true} {
			c := &collect{}
			src := Source{Path: "f.avro", Kind: event.AppLoad, Size: int64(len(b)), End: int64(len(b)), Data: b}
			if streamed {
				src.Data = nil
				src.Open = func(off int64) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b[off:])), nil }
			}
			c.read(t, src)
			if len(c.damage) != 1 || len(c.evs) != len(evs)-lost {
				t.Errorf("%v streamed=%v: %d events (want %d), damage %v", codec, streamed, len(c.evs), len(evs)-lost, c.damage)
			}
		}
	}
}
