package archive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/raw"
)

// partition is the archiver's state of one assigned partition, for the
// length of one assignment.
type partition struct {
	topic     string
	partition int32
	kind      event.Kind
	// start is the first offset received in this assignment (-1 before):
	// leftovers from this offset on are deleted (cleanLeftovers).
	start int64
	// next is the offset after the last one received (-1 before).
	next int64
	// hw is the high watermark the last fetch reported (-1 unknown).
	hw int64
	// cleaned holds the directories cleanLeftovers has handled, written
	// the files this assignment made (dir/name).
	cleaned map[string]bool
	written map[string]bool
	seg     *segment
}

func newPartition(topic string, part int32, kind event.Kind) *partition {
	return &partition{topic: topic, partition: part, kind: kind, start: -1, next: -1, hw: -1,
		cleaned: map[string]bool{}, written: map[string]bool{}}
}

func (p *partition) String() string { return p.topic + "/" + strconv.Itoa(int(p.partition)) }

// segment is a consecutive offset range of one partition on its way into
// files: one open OCF writer per arrival hour, and the dead letters, which
// are few and written whole when the segment rolls.
type segment struct {
	first, last int64
	epoch       int32 // leader epoch of the last record, for the commit
	opened      time.Time
	records     int64
	bytes       int64
	hours       map[int64]*hourFile            // by hour, Unix ms
	dead        map[string][]deadletter.Record // by dead-letter directory
}

type hourFile struct {
	dir, name string
	out       io.WriteCloser // blob.Create: visible only once closed
	count     *countingWriter
	w         *avroio.Writer
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// maxHour is the last hour a raw directory can name (dt= has four digits).
var maxHour = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).UnixMilli()

// handle takes one record into p's segment, opening the segment, an hour
// file or a dead-letter list as needed, and rolls the segment when it is
// full. Only output failures are returned.
func (a *Archiver) handle(ctx context.Context, p *partition, r *kgo.Record) error {
	if p.next >= 0 && r.Offset < p.next {
		return nil // seen already (a re-fetch): never archive an offset twice
	}
	if p.start < 0 {
		p.start = r.Offset
	}
	a.stats.Consumed++
	nowMs := a.cfg.Now().UnixMilli()
	var ev event.Event
	reason, detail := "", ""
	var hour int64
	switch err := a.dec.DecodeSingle(r.Value, &ev); {
	case err != nil:
		reason, detail = ReasonUndecodable, err.Error()
	case ev.Kind != p.kind:
		reason, detail = ReasonKindMismatch, fmt.Sprintf("a %s record on topic %s", ev.Kind, p.topic)
	case event.CheckFuture(&ev, nowMs, a.cfg.MaxFuture) != "":
		// Checked before the hour: a stamp in 2090 (or beyond year 9999)
		// is a wrong clock or unit, and must not make a raw directory of
		// the future, which the batch would take for data to come.
		reason, detail = ReasonFutureTime, fmt.Sprintf("event_time %d or received_time %d is more than %v after the archiver's clock %d",
			ev.EventTime, ev.ReceivedTime, a.cfg.MaxFuture, nowMs)
	default:
		hour = time.UnixMilli(ev.ReceivedTime).UTC().Truncate(time.Hour).UnixMilli()
		if ev.ReceivedTime < -62135596800000 || hour > maxHour { // before year 1 or after 9999
			reason, detail = ReasonBadReceivedTime, fmt.Sprintf("received_time %d has no dt=YYYY-MM-DD directory", ev.ReceivedTime)
		}
	}
	if reason == "" && p.seg != nil && p.seg.hours[hour] == nil && len(p.seg.hours) >= a.cfg.MaxHourFiles {
		if err := a.roll(ctx, p); err != nil {
			return err
		}
	}
	if p.seg == nil {
		p.seg = &segment{first: r.Offset, opened: time.Now(), hours: map[int64]*hourFile{}, dead: map[string][]deadletter.Record{}}
	}
	seg := p.seg
	if reason != "" {
		a.stats.DeadLetters[reason]++
		dir := deadletter.Dir(a.cfg.Output, "archive", recordDay(r, nowMs+a.cfg.MaxFuture.Milliseconds()))
		if err := a.cleanLeftovers(ctx, p, dir); err != nil {
			return err
		}
		seg.dead[dir] = append(seg.dead[dir], deadletter.Record{Pipeline: "archive", Source: p.String(), Offset: r.Offset,
			Index: -1, Lost: 1, Reason: reason, Detail: detail, Payload: slices.Clone(r.Value)})
	} else {
		if a.sealedBefore(p.kind, hour) {
			a.stats.ArchivedAfterSeal++
		}
		hf := seg.hours[hour]
		if hf == nil {
			var err error
			if hf, err = a.openHour(ctx, p, hour); err != nil {
				return err
			}
			seg.hours[hour] = hf
		}
		// The record as produced: the single-object body is Avro binary
		// in the pinned schema of its kind, which is the file's schema.
		if err := hf.w.AppendEncoded(r.Value[10:]); err != nil {
			return &OutputError{Op: "write", Path: hf.dir + "/" + hf.name, Err: err}
		}
	}
	seg.last, seg.epoch = r.Offset, r.LeaderEpoch
	seg.records++
	seg.bytes += int64(len(r.Value))
	p.next = r.Offset + 1
	if seg.records >= a.cfg.RollRecords || seg.bytes >= a.cfg.RollBytes {
		return a.roll(ctx, p)
	}
	return nil
}

// recordDay is the day of a record's Kafka timestamp (the producer's
// received_time), or 1970-01-01 if it has none a directory can name. A
// timestamp after limitMs (the future_time bound) gives the bound's day:
// no directory of the future. That day depends on the clock, so a replay
// on a later day after a crash can leave a second copy of such a dead
// letter, in the earlier day's directory; never a second copy of an event.
func recordDay(r *kgo.Record, limitMs int64) string {
	t := r.Timestamp.UTC()
	if t.UnixMilli() > limitMs {
		t = time.UnixMilli(limitMs).UTC()
	}
	if t.Year() < 1 || t.Year() > 9999 {
		t = time.Unix(0, 0).UTC()
	}
	return t.Format(time.DateOnly)
}

// openHour starts the segment's file for one arrival hour, after removing
// what an earlier owner left there.
func (a *Archiver) openHour(ctx context.Context, p *partition, hour int64) (*hourFile, error) {
	dir := raw.HourDir(a.cfg.Output, p.kind, time.UnixMilli(hour))
	if err := a.cleanLeftovers(ctx, p, dir); err != nil {
		return nil, err
	}
	name := ObjectName(p.topic, p.partition, p.seg.first)
	out, err := blob.Create(ctx, dir+"/"+name)
	if err != nil {
		return nil, &OutputError{Op: "create", Path: dir + "/" + name, Err: err}
	}
	cw := &countingWriter{w: out}
	// A sync marker derived from the path: rewriting the same segment
	// gives the same bytes.
	var sync [16]byte
	binary.LittleEndian.PutUint64(sync[:8], xxhash.Sum64String("lumen.archive:"+dir+"/"+name))
	binary.LittleEndian.PutUint64(sync[8:], xxhash.Sum64String(name+":"+dir))
	w, err := avroio.NewEventWriter(cw, p.kind, avroio.WithCodec(a.cfg.Codec), avroio.WithSyncMarker(sync))
	if err != nil {
		blob.Abort(out)
		return nil, &OutputError{Op: "write", Path: dir + "/" + name, Err: err}
	}
	return &hourFile{dir: dir, name: name, out: out, count: cw, w: w}, nil
}

// roll makes every file of p's segment durable and queues the commit of
// last+1: files first, offsets after, so a segment is all or nothing.
func (a *Archiver) roll(ctx context.Context, p *partition) error {
	seg := p.seg
	if seg == nil {
		return nil
	}
	hours := slices.Sorted(maps.Keys(seg.hours))
	var err error
	dirs := map[string]bool{}
	for _, h := range hours {
		hf := seg.hours[h]
		path := hf.dir + "/" + hf.name
		if err != nil {
			blob.Abort(hf.out)
			continue
		}
		if cerr := hf.w.Close(); cerr != nil {
			blob.Abort(hf.out)
			err = &OutputError{Op: "write", Path: path, Err: cerr}
			continue
		}
		if cerr := hf.out.Close(); cerr != nil {
			err = &OutputError{Op: "close", Path: path, Err: cerr}
			continue
		}
		p.written[path] = true
		dirs[hf.dir] = true
		a.stats.Files++
		a.stats.Bytes += hf.count.n
		a.stats.Archived += hf.w.Records()
	}
	p.seg = nil
	if err != nil {
		return err
	}
	for _, dir := range slices.Sorted(maps.Keys(seg.dead)) {
		path := dir + "/" + ObjectName(p.topic, p.partition, seg.first)
		if err := deadletter.WriteFile(ctx, path, seg.dead[dir]); err != nil {
			return &OutputError{Op: "write", Path: path, Err: err}
		}
		p.written[path] = true
		dirs[dir] = true
		a.stats.DeadLetterFiles++
	}
	// A rename is durable once its directory is synced.
	for dir := range dirs {
		if err := syncDir(dir); err != nil {
			return &OutputError{Op: "sync", Path: dir, Err: err}
		}
	}
	a.stats.Segments++
	// CommitRecords commits a record's offset + 1.
	a.pending[tp{p.topic, p.partition}] = &kgo.Record{Topic: p.topic, Partition: p.partition, Offset: seg.last, LeaderEpoch: seg.epoch}
	return nil
}

// drop discards p's open segment without making anything visible.
func drop(p *partition) {
	if p.seg == nil {
		return
	}
	for _, hf := range p.seg.hours {
		blob.Abort(hf.out)
	}
	p.seg = nil
}

func syncDir(dir string) error {
	if !blob.IsLocal(dir) {
		return nil
	}
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, os.ErrInvalid) {
		return nil // some filesystems cannot sync a directory
	}
	return err
}
