package rollup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
)

// Schema is the Avro schema of a rollup file: one record, in an object
// container with snappy blocks (whose CRC-32 catches damage). The
// aggregates are aggregate.EncodeAgg's bytes.
const Schema = `{
  "type": "record", "name": "Rollup", "namespace": "lumen.rollup",
  "fields": [
    {"name": "format", "type": "int"},
    {"name": "semantics", "type": "int"},
    {"name": "partition", "type": "string"},
    {"name": "precision", "type": "int"},
    {"name": "manifest", "type": {"type": "array", "items": {"type": "record", "name": "Object",
      "fields": [{"name": "key", "type": "string"}, {"name": "size", "type": "long"}, {"name": "version", "type": "string"}]}}},
    {"name": "files", "type": "long"},
    {"name": "bytes", "type": "long"},
    {"name": "events", "type": "long"},
    {"name": "clock_skew", "type": "long"},
    {"name": "dead_letters", "type": {"type": "map", "values": "long"}},
    {"name": "latest", "type": "long"},
    {"name": "future_from", "type": "long"},
    {"name": "aggs", "type": {"type": "array", "items": {"type": "record", "name": "AppAgg",
      "fields": [{"name": "kind", "type": "string"}, {"name": "app", "type": "string"}, {"name": "agg", "type": "bytes"}]}}}
  ]
}`

// MaxSize bounds a rollup file that Read accepts.
const MaxSize = 256 << 20

var codec = sync.OnceValues(func() (*goavro.Codec, error) { return goavro.NewCodec(Schema) })

// Marshal renders r as a rollup file.
func Marshal(r Rollup) ([]byte, error) { return marshal(r, Semantics) }

func marshal(r Rollup, semantics int) ([]byte, error) {
	c, err := codec()
	if err != nil {
		return nil, err
	}
	manifest := make([]any, len(r.Manifest))
	for i, o := range r.Manifest {
		manifest[i] = map[string]any{"key": o.Key, "size": o.Size, "version": o.Version}
	}
	dead := map[string]any{}
	for k, n := range r.Counters.DeadLetters {
		dead[k] = n
	}
	aggs := make([]any, 0, len(r.Aggs))
	for k, a := range r.Aggs {
		b, err := aggregate.EncodeAgg(a)
		if err != nil {
			return nil, err
		}
		aggs = append(aggs, map[string]any{"kind": k.Kind.String(), "app": k.AppID, "agg": b})
	}
	rec, err := c.BinaryFromNative(nil, map[string]any{
		"format": Format, "semantics": semantics, "partition": r.Partition.String(), "precision": int32(r.Precision), "manifest": manifest,
		"files": r.Counters.Files, "bytes": r.Counters.Bytes, "events": r.Counters.Events, "clock_skew": r.Counters.ClockSkew,
		"dead_letters": dead, "latest": r.Times.Latest, "future_from": r.Times.FutureFrom, "aggs": aggs,
	})
	if err != nil {
		return nil, fmt.Errorf("rollup: encode %v: %w", r.Partition, err)
	}
	var buf bytes.Buffer
	w, err := avroio.NewWriter(&buf, Schema, avroio.WithCodec(avroio.CodecSnappy))
	if err != nil {
		return nil, err
	}
	if err := w.AppendEncoded(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unmarshal parses a rollup file. Anything but one well-formed record of
// this Format and this Semantics is ErrInvalid. The container is verified by avroio.Blocks
// (sync markers, snappy's CRC-32) and the record decoded with every length
// bounded by the bytes left, so no damaged file can make it allocate more
// than the file's size.
func Unmarshal(b []byte) (Rollup, error) {
	var rec []byte
	records := int64(0)
	h, err := avroio.Blocks(b, func(count int64, data []byte) error {
		records += count
		rec = data
		return nil
	})
	if err != nil {
		return Rollup{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if string(h.Schema) != Schema {
		return Rollup{}, fmt.Errorf("%w: not a rollup file (another schema)", ErrInvalid)
	}
	if records != 1 {
		return Rollup{}, fmt.Errorf("%w: %d records, want 1", ErrInvalid, records)
	}
	d := decoder{b: rec}
	r := d.rollup()
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the record", len(d.b))
	}
	if d.err != nil {
		return Rollup{}, d.err
	}
	return r, nil
}

// decoder reads Schema's record. Lengths and counts are checked against
// the bytes left before anything is allocated.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) long() int64 {
	if d.err != nil {
		return 0
	}
	v, n, err := event.ReadLong(d.b)
	if err != nil {
		d.fail("%v", err)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.long()
	if d.err == nil && (n < 0 || n > int64(len(d.b))) {
		d.fail("a length of %d with %d bytes left", n, len(d.b))
	}
	if d.err != nil {
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// items reads an array or map: blocks of items, a negative count
// followed by the block's size, until a zero count.
func (d *decoder) items(item func()) {
	for d.err == nil {
		n := d.long()
		if n == 0 || d.err != nil {
			return
		}
		if n < 0 {
			n = -n
			d.long() // the block's size in bytes
		}
		if n > int64(len(d.b)) { // every item takes at least a byte
			d.fail("%d items with %d bytes left", n, len(d.b))
			return
		}
		for i := int64(0); i < n && d.err == nil; i++ {
			item()
		}
	}
}

func (d *decoder) rollup() (r Rollup) {
	if f := d.long(); d.err == nil && f != Format {
		d.fail("format %d, this build reads %d", f, Format)
	}
	if v := d.long(); d.err == nil && v != Semantics {
		d.fail("semantics %d, this build's is %d (validation, bucketing or encoding changed)", v, Semantics)
	}
	part := d.string()
	if d.err == nil {
		var err error
		if r.Partition, err = raw.ParsePartition(part); err != nil {
			d.fail("%v", err)
		}
	}
	if p := d.long(); d.err == nil && (p < 0 || p > 255) {
		d.fail("precision %d", p)
	} else {
		r.Precision = uint8(p)
	}
	d.items(func() {
		o := Object{Key: d.string(), Size: d.long(), Version: d.string()}
		r.Manifest = append(r.Manifest, o)
	})
	r.Counters = Counters{Files: d.long(), Bytes: d.long(), Events: d.long(), ClockSkew: d.long(), DeadLetters: map[string]int64{}}
	d.items(func() {
		k := d.string()
		r.Counters.DeadLetters[k] = d.long()
	})
	r.Times = TimeBounds{Latest: d.long(), FutureFrom: d.long()}
	r.Aggs = map[aggregate.AppKey]aggregate.Agg{}
	d.items(func() {
		kind, app, b := d.string(), d.string(), d.bytes()
		if d.err != nil {
			return
		}
		k, err := event.ParseKind(kind)
		if err != nil {
			d.fail("%v", err)
			return
		}
		a, err := aggregate.DecodeAgg(b)
		if err != nil {
			d.fail("%v", err)
			return
		}
		r.Aggs[aggregate.AppKey{Kind: k, AppID: app}] = a
	})
	return r
}

// Write writes r to path atomically: the file appears whole or not at all.
// It is not synced to disk before the rename: a rollup is a cache, and one
// that a crash left empty or short is rejected when read (and its
// partition read from raw), never trusted.
func Write(ctx context.Context, path string, r Rollup) error {
	b, err := Marshal(r)
	if err != nil {
		return err
	}
	if err := blob.WriteFile(ctx, path, b, blob.NoSync()); err != nil {
		return fmt.Errorf("rollup: write %s: %w", path, err)
	}
	return nil
}

// Read reads the rollup at path. A missing file is ErrInvalid (it cannot
// be used); a failure of the filesystem is returned as it is, since
// reading again may succeed.
func Read(ctx context.Context, path string) (Rollup, int64, error) {
	rc, err := blob.OpenRange(ctx, path, 0, -1)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Rollup{}, 0, fmt.Errorf("%w: %s is gone: %v", ErrInvalid, path, err)
		}
		return Rollup{}, 0, err
	}
	defer rc.Close()
	b, err := readAllLimited(rc, MaxSize)
	if err != nil {
		return Rollup{}, 0, err
	}
	r, err := Unmarshal(b)
	return r, int64(len(b)), err
}

// List finds the rollups of the arrival days [first, last] under root,
// with one listing per kind and day, as the raw layout is listed.
func List(ctx context.Context, root string, first, last time.Time, concurrency int) (map[raw.Partition][]string, error) {
	days, listings, err := raw.ListDays(ctx, first, last, concurrency, func(d raw.Partition) string { return d.Dir(root, "rollup") + "/" })
	if err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	return collect(days, listings), nil
}

// ListDays finds the rollups of the given arrival days (kind and day;
// Hour -1) under root, one listing each: an incremental run lists only
// the partitions it reads.
func ListDays(ctx context.Context, root string, days []raw.Partition, concurrency int) (map[raw.Partition][]string, error) {
	listings, err := raw.ListEach(ctx, days, concurrency, func(d raw.Partition) string { return d.Dir(root, "rollup") + "/" })
	if err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	return collect(days, listings), nil
}

// collect maps the rollup files of day listings to their partitions.
func collect(days []raw.Partition, listings [][]blob.FileInfo) map[raw.Partition][]string {
	out := map[raw.Partition][]string{}
	for i, files := range listings {
		for _, f := range files {
			if !strings.HasSuffix(f.Path, ".avro") {
				continue
			}
			p := days[i]
			if dir := path.Base(path.Dir(f.Path)); strings.HasPrefix(dir, "hr=") {
				hour, err := raw.ParsePartition(p.String() + "/" + dir)
				if err != nil {
					continue
				}
				p = hour
			}
			out[p] = append(out[p], f.Path)
		}
	}
	return out
}
