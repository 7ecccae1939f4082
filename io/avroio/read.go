package avroio

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/lumenhq/lumen/event"
)

// Source is one Avro object container file of events, or one split of it,
// to Read. A split [Start, End) holds the blocks that start inside it; the
// splits of a file together hold each block once.
type Source struct {
	Path string
	Kind event.Kind
	Size int64
	// Start and End bound the split; a whole file is [0, Size).
	Start, End int64
	// Data is the whole file, fetched into memory; used when Open is nil.
	Data []byte
	// Open, if set, streams the file from offset to its end.
	Open func(offset int64) (io.ReadCloser, error)
	// SeekThreshold: a split starting further than this past the header is
	// read from a second stream opened at the split rather than read
	// through (on S3, a ranged GET). Default 1 MiB.
	SeekThreshold int64
}

func (s Source) whole() bool { return s.Start == 0 && s.End >= s.Size }

// Damage is what a Source could not give as events: a file whose header or
// schema is unusable (Offset and Index -1), a block that fails its sync
// marker, length or decompression (Index -1), or one record that fails
// validation (with its bytes in Payload).
type Damage struct {
	Offset  int64 // file offset of the block; -1 for the whole file
	Index   int64 // the record's index in its block; -1 for a block or file
	Lost    int64 // records lost, where known
	Reason  string
	Detail  string
	Payload []byte
}

// ReadStats counts what a Read did.
type ReadStats struct {
	Blocks, Records, Valid, Damaged int64
}

// Reader reads the events of Avro object container files written with any
// schema that resolves to one of lumen's pinned ones (DESIGN §1), with
// codecs null, deflate, snappy and zstandard. Damage never fails a read:
// the good blocks around a bad one are read (sync markers resynchronise
// the scan), and what is lost is reported. Only a failure of the
// underlying stream is an error, since reading again may succeed.
//
// A Reader reuses its buffers between reads and is not safe for
// concurrent use.
type Reader struct {
	dec    *event.Decoder
	evs    []event.Event
	bounds []int
	valid  []event.Event
	stats  ReadStats
	events func([]event.Event)
	damage func(Damage)
}

// NewReader returns a Reader.
func NewReader() *Reader { return &Reader{dec: event.NewDecoder()} }

// Read reads src, handing each block's valid events to events (the slice
// and each event's DeviceID alias the Reader's buffers: use them during the
// call only) and what it cannot read to damage.
func (r *Reader) Read(src Source, events func([]event.Event), damage func(Damage)) (ReadStats, error) {
	r.stats, r.events, r.damage = ReadStats{}, events, damage
	if src.SeekThreshold <= 0 {
		src.SeekThreshold = 1 << 20
	}
	if src.Open == nil {
		return r.stats, r.scan(newBytesScanner(src.Data, src.Path), src)
	}
	rc, err := src.Open(0)
	if err != nil {
		return r.stats, err
	}
	defer rc.Close()
	sc := newScanner(rc, src.Path, 0, src.Size)
	if src.whole() {
		return r.stats, r.scan(sc, src)
	}
	// A split: read the header from the start of the file, then move to
	// the first block that starts inside the split.
	h, err := sc.readHeader()
	if err != nil {
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			if src.Start == 0 { // only the first split reports a bad header
				r.fileDamage(ce.Reason, ce.Detail)
			}
			return r.stats, nil
		}
		return r.stats, err
	}
	if src.Start > h.Len+src.SeekThreshold {
		rc2, err := src.Open(src.Start - syncLen)
		if err != nil {
			return r.stats, err
		}
		defer rc2.Close()
		sc2 := newScanner(rc2, src.Path, src.Start-syncLen, src.Size)
		sc2.hdr = h
		sc = sc2
	}
	if err := sc.seekSplit(src.Start); err != nil {
		if err == io.EOF {
			return r.stats, nil
		}
		return r.stats, err
	}
	sc.stopAt = src.End
	return r.stats, r.blocks(sc, src)
}

// scan reads a whole file from its start.
func (r *Reader) scan(sc *scanner, src Source) error {
	if _, err := sc.readHeader(); err != nil {
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			r.fileDamage(ce.Reason, ce.Detail)
			return nil
		}
		return err
	}
	return r.blocks(sc, src)
}

func (r *Reader) blocks(sc *scanner, src Source) error {
	defer sc.close()
	rd, err := resolveWriter(src.Kind, sc.hdr.Schema, r.dec)
	if err != nil {
		ce := err.(*CorruptError)
		r.fileDamage(ce.Reason, ce.Detail)
		return nil
	}
	for {
		b, ce, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ce != nil {
			r.report(Damage{Offset: ce.Offset, Index: -1, Reason: string(ce.Reason), Detail: ce.Detail})
			continue
		}
		r.stats.Blocks++
		r.evs, r.bounds, err = rd.decodeBlock(b, r.evs[:0], r.bounds[:0])
		if err != nil {
			r.report(Damage{Offset: b.Offset, Index: -1, Lost: b.Count,
				Reason: string(ReasonBadRecord), Detail: fmt.Sprintf("block of %d records: %v", b.Count, err)})
			continue
		}
		r.stats.Records += int64(len(r.evs))
		r.valid = r.valid[:0]
		for i := range r.evs {
			if reason := event.Validate(&r.evs[i]); reason != "" {
				r.report(Damage{Offset: b.Offset, Index: int64(i), Lost: 1, Reason: string(reason), Detail: r.evs[i].String(),
					Payload: bytes.Clone(b.Data[r.bounds[i]:r.bounds[i+1]])})
				continue
			}
			r.valid = append(r.valid, r.evs[i])
		}
		r.stats.Valid += int64(len(r.valid))
		if len(r.valid) > 0 {
			r.events(r.valid)
		}
	}
}

func (r *Reader) fileDamage(reason Reason, detail string) {
	r.report(Damage{Offset: -1, Index: -1, Reason: string(reason), Detail: detail})
}

func (r *Reader) report(d Damage) {
	r.stats.Damaged++
	r.damage(d)
}

// Blocks calls fn with each block of an object container file held in
// memory: its record count and its decompressed data, valid during the
// call only. Every block is verified first (length bounds, sync marker,
// the codec's checksum where it has one), so damage stops the walk with a
// *CorruptError (IsCorrupt) before fn sees a bad byte. It returns the
// file's header.
func Blocks(file []byte, fn func(count int64, data []byte) error) (*Header, error) {
	sc := newBytesScanner(file, "")
	defer sc.close()
	h, err := sc.readHeader()
	if err != nil {
		return nil, err
	}
	for {
		b, ce, err := sc.next()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if ce != nil {
			return h, ce
		}
		if err := fn(b.Count, b.Data); err != nil {
			return h, err
		}
	}
}
