package s3fs_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/s3test"
)

type collect struct {
	n    int
	apps map[string]int
	dead []deadletter.Record
}

func (c *collect) Events(evs []event.Event) {
	for _, e := range evs {
		c.n++
		c.apps[e.AppID]++
	}
}
func (c *collect) DeadLetter(r deadletter.Record) { c.dead = append(c.dead, r) }

func encode(t *testing.T, app string, n int, opts ...avroio.WriterOption) []byte {
	var buf bytes.Buffer
	w, err := avroio.NewEventWriter(&buf, event.AppLoad, opts...)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < n; i++ {
		e := event.Event{Kind: event.AppLoad, AppID: app, AppVersion: "1", Platform: "ios",
			DeviceID: []byte(fmt.Sprint("d", i)), EventTime: base + int64(i), ReceivedTime: base + int64(i)}
		w.AppendEvent(&e)
	}
	w.Close()
	return buf.Bytes()
}

// Damaged objects in S3 become dead letters with their key and a reason;
// everything else is read, including the good blocks of a damaged object.
func TestCorruptObjects(t *testing.T) {
	endpoints(t, func(t *testing.T, e *s3test.Endpoint) {
		s3fs.Configure(e.Options)
		f := s3fs.New(e.Options)
		root := e.Root("lake")
		dir := raw.HourDir(root, event.AppLoad, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))

		good := encode(t, "good", 500, avroio.WithCodec(avroio.CodecDeflate))
		truncated := encode(t, "truncated", 500, avroio.WithBlockSize(1024))
		// Three blocks of snappy; the middle one's data is damaged (its CRC
		// fails), the first and last are good.
		mid := encode(t, "mid", 300, avroio.WithCodec(avroio.CodecSnappy), avroio.WithBlockSize(2048))
		put(t, f, dir+"/good.avro", good)
		put(t, f, dir+"/truncated.avro", truncated[:len(truncated)-300])
		put(t, f, dir+"/empty.avro", nil)
		put(t, f, dir+"/magic.avro", []byte("ORC\x00 not avro at all"))
		midBlocks := blocks(t, mid)
		if len(midBlocks) < 3 {
			t.Fatalf("%d blocks", len(midBlocks))
		}
		damaged := bytes.Clone(mid)
		damaged[midBlocks[1].off+30] ^= 0xff
		put(t, f, dir+"/mid.avro", damaged)

		day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		files, err := raw.ListWindow(context.Background(), root, day, day, raw.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := &collect{apps: map[string]int{}}
		for _, u := range raw.Pack(files, raw.PlanOptions{}) {
			if _, err := raw.ReadUnit(context.Background(), u, raw.ReadOptions{}, c); err != nil {
				t.Fatal(err)
			}
		}
		truncatedKept := 0
		for _, b := range blocks(t, truncated[:len(truncated)-300]) {
			truncatedKept += b.count
		}
		want := map[string]int{"good": 500, "truncated": truncatedKept, "mid": 300 - midBlocks[1].count}
		if !reflect.DeepEqual(c.apps, want) {
			t.Errorf("events read by app = %v, want %v", c.apps, want)
		}
		var got []string
		for _, d := range c.dead {
			got = append(got, d.Source[strings.LastIndex(d.Source, "/")+1:]+" "+d.Reason)
			if !strings.HasPrefix(d.Source, "s3://"+e.Bucket+"/") {
				t.Errorf("dead letter without its key: %+v", d)
			}
		}
		sort.Strings(got)
		wantDead := []string{"empty.avro empty_file", "magic.avro bad_magic", "mid.avro decompress_failed", "truncated.avro truncated_block"}
		if !reflect.DeepEqual(got, wantDead) {
			t.Errorf("dead letters = %v, want %v", got, wantDead)
		}
	})
}

type blk struct{ off, count int }

// blocks walks an in-memory OCF's blocks (test helper: a tiny independent
// parser, so the test does not trust the code under test).
func blocks(t *testing.T, b []byte) []blk {
	t.Helper()
	pos := 4
	for { // metadata map
		n, used, _ := event.ReadLong(b[pos:])
		pos += used
		if n == 0 {
			break
		}
		for i := int64(0); i < n; i++ {
			for j := 0; j < 2; j++ {
				l, used, _ := event.ReadLong(b[pos:])
				pos += used + int(l)
			}
		}
	}
	pos += 16
	var out []blk
	for pos < len(b) {
		start := pos
		count, used, err := event.ReadLong(b[pos:])
		if err != nil {
			break
		}
		pos += used
		size, used, err := event.ReadLong(b[pos:])
		if err != nil {
			break
		}
		pos += used + int(size) + 16
		if pos > len(b) {
			break
		}
		out = append(out, blk{start, int(count)})
	}
	return out
}
