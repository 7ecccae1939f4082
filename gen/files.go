package gen

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
)

// FileSink writes records into the raw layout under Root: one directory per
// kind and arrival hour, FilesPerHour files per hour over all kinds, split in
// proportion to each kind's volume. Output is byte-for-byte deterministic.
type FileSink struct {
	Root         string
	FilesPerHour int
	Codec        avroio.Codec
	Seed         uint64
	// Name starts every file name (default "part"): sinks sharing a root
	// need names of their own.
	Name string

	pending map[int64][]Record // by arrival hour (ms)
	Files   int64
	Bytes   int64
	Written int64
}

// NewFileSink returns a FileSink for cfg under root.
func NewFileSink(root string, cfg Config) *FileSink {
	cfg.EnsureDefaults()
	return &FileSink{Root: root, FilesPerHour: cfg.FilesPerHour, Codec: cfg.Codec, Seed: cfg.Seed, Name: "part", pending: map[int64][]Record{}}
}

// Record buffers r until its arrival hour is complete.
func (f *FileSink) Record(r *Record) error {
	h := r.Arrival - r.Arrival%3_600_000
	c := *r
	c.Event = r.Event.Clone()
	f.pending[h] = append(f.pending[h], c)
	return nil
}

// DayDone writes every arrival hour before the end of day.
func (f *FileSink) DayDone(day time.Time) error {
	cut := day.AddDate(0, 0, 1).UnixMilli()
	var hours []int64
	for h := range f.pending {
		if h < cut {
			hours = append(hours, h)
		}
	}
	slices.Sort(hours)
	for _, h := range hours {
		if err := f.writeHour(h, f.pending[h]); err != nil {
			return err
		}
		delete(f.pending, h)
	}
	return nil
}

// Close writes whatever is still pending.
func (f *FileSink) Close() error {
	return f.DayDone(time.UnixMilli(1 << 50))
}

func (f *FileSink) writeHour(h int64, recs []Record) error {
	slices.SortStableFunc(recs, func(a, b Record) int { return cmp.Compare(a.Arrival, b.Arrival) })
	byKind := map[event.Kind][]Record{}
	for _, r := range recs {
		byKind[r.Event.Kind] = append(byKind[r.Event.Kind], r)
	}
	hour := time.UnixMilli(h).UTC()
	for _, k := range event.Kinds {
		rs := byKind[k]
		if len(rs) == 0 {
			continue
		}
		n := max(1, (f.FilesPerHour*len(rs)+len(recs)/2)/len(recs))
		n = min(n, len(rs))
		dir := raw.HourDir(f.Root, k, hour)
		for i := 0; i < n; i++ {
			lo, hi := i*len(rs)/n, (i+1)*len(rs)/n
			path := fmt.Sprintf("%s/%s-%05d.avro", dir, f.Name, i)
			if err := f.writeFile(path, k, rs[lo:hi]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FileSink) writeFile(path string, k event.Kind, rs []Record) error {
	var buf bytes.Buffer
	w, err := avroio.NewEventWriter(&buf, k, avroio.WithCodec(f.Codec), avroio.WithSyncMarker(syncMarker(f.Seed, path)))
	if err != nil {
		return err
	}
	for i := range rs {
		if err := w.AppendEvent(&rs[i].Event); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	f.Written += int64(len(rs))
	return f.put(path, buf.Bytes())
}

func (f *FileSink) put(path string, b []byte) error {
	if err := blob.WriteFile(context.Background(), path, b, blob.NoSync()); err != nil {
		return fmt.Errorf("gen: write %s: %w", path, err)
	}
	f.Files++
	f.Bytes += int64(len(b))
	return nil
}

func syncMarker(seed uint64, path string) [16]byte {
	var s [16]byte
	binary.LittleEndian.PutUint64(s[:8], xxhash.Sum64String(fmt.Sprint(seed, path)))
	binary.LittleEndian.PutUint64(s[8:], xxhash.Sum64String(fmt.Sprint(path, seed)))
	return s
}

// JunkReasons are the dead-letter reasons WriteJunk's files must produce.
var JunkReasons = map[string]int64{"empty_file": 1, "foreign_schema": 1, "truncated_block": 1}

// WriteJunk writes three damaged files into the first arrival hour of
// app_load: a zero-byte file, a valid OCF of a foreign record, and a file
// whose only block is cut short. None of their records is readable, so the
// truth does not change; each must become one dead letter.
func (f *FileSink) WriteJunk(start time.Time) error {
	dir := raw.HourDir(f.Root, event.AppLoad, start)
	if err := f.put(dir+"/junk-empty.avro", nil); err != nil {
		return err
	}
	var fb bytes.Buffer
	fw, err := goavro.NewOCFWriter(goavro.OCFConfig{W: &fb, Schema: `{"type":"record","name":"Invoice","namespace":"com.billing","fields":[{"name":"amount","type":"long"}]}`})
	if err != nil {
		return err
	}
	if err := fw.Append([]any{map[string]any{"amount": int64(42)}}); err != nil {
		return err
	}
	if err := f.put(dir+"/junk-foreign.avro", fb.Bytes()); err != nil {
		return err
	}
	var tb bytes.Buffer
	w, err := avroio.NewEventWriter(&tb, event.AppLoad, avroio.WithSyncMarker(syncMarker(f.Seed, "junk")))
	if err != nil {
		return err
	}
	ev := event.Event{Kind: event.AppLoad, AppID: "com.junk.app", AppVersion: "1", Platform: "ios",
		DeviceID: []byte("junk-device"), EventTime: start.UnixMilli(), ReceivedTime: start.UnixMilli()}
	for i := 0; i < 50; i++ {
		w.AppendEvent(&ev)
	}
	w.Close()
	return f.put(dir+"/junk-truncated.avro", tb.Bytes()[:tb.Len()-40])
}
