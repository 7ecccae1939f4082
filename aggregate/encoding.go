package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lumenhq/lumen/aggregate/hll"
	"github.com/lumenhq/lumen/event"
)

var errShort = errors.New("aggregate: truncated encoding")

// EncodeAppKey is AppKey's deterministic encoding: the kind byte, then the
// app id. Keys cross shuffles in it, so it must not change.
func EncodeAppKey(k AppKey) []byte {
	b := make([]byte, 0, 1+len(k.AppID))
	return append(append(b, byte(k.Kind)), k.AppID...)
}

// DecodeAppKey inverts EncodeAppKey.
func DecodeAppKey(b []byte) (AppKey, error) {
	if len(b) < 1 {
		return AppKey{}, errShort
	}
	return AppKey{Kind: event.Kind(b[0]), AppID: string(b[1:])}, nil
}

const aggCoderVersion = 1

// EncodeAgg is Agg's wire form: version, granularity, precision, the count
// cells, then the sketches in their own stable binary form (hll). It is
// how partial aggregates cross shuffles, and how they are stored.
func EncodeAgg(a Agg) ([]byte, error) {
	b := make([]byte, 0, 16+len(a.cells)*16+len(a.days)*64)
	b = append(b, aggCoderVersion, byte(a.Gran), a.Precision)
	b = binary.AppendUvarint(b, uint64(len(a.cells)))
	for c, x := range a.cells {
		b = appendString(b, c.Version)
		b = binary.AppendVarint(b, c.Bucket)
		b = binary.AppendVarint(b, x.n)
	}
	b = binary.AppendUvarint(b, uint64(len(a.days)))
	for c, s := range a.days {
		b = appendString(b, c.Version)
		b = binary.AppendVarint(b, c.Day)
		mark := len(b)
		b = append(b, 0, 0, 0, 0)
		var err error
		if b, err = s.AppendBinary(b); err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint32(b[mark:], uint32(len(b)-mark-4))
	}
	return b, nil
}

// DecodeAgg inverts EncodeAgg.
func DecodeAgg(b []byte) (Agg, error) {
	if len(b) < 3 || b[0] != aggCoderVersion {
		return Agg{}, fmt.Errorf("aggregate: Agg coder: bad header")
	}
	a := NewAgg(Granularity(b[1]), b[2])
	if !a.Gran.valid() || (a.Precision != 0 && (a.Precision < hll.MinPrecision || a.Precision > hll.MaxPrecision)) {
		return Agg{}, fmt.Errorf("aggregate: Agg coder: bad granularity %d or precision %d", b[1], b[2])
	}
	r := reader{b: b[3:]}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		v := r.string()
		bucket := r.varint()
		// Linked to their day's sketch below, once the sketches are read.
		k := Cell{v, bucket}
		if a.cells[k] == nil {
			a.cells[k] = &cell{}
		}
		a.cells[k].n += r.varint()
	}
	n = r.uvarint()
	if n > 0 && a.days == nil {
		return Agg{}, fmt.Errorf("aggregate: Agg coder: sketches without precision")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		v := r.string()
		day := r.varint()
		raw := r.bytes32()
		if r.err != nil {
			break
		}
		s := new(hll.Sketch)
		if err := s.UnmarshalBinary(raw); err != nil {
			return Agg{}, fmt.Errorf("aggregate: Agg coder: %w", err)
		}
		a.days[DayCell{v, day}] = s
	}
	if r.err != nil {
		return Agg{}, r.err
	}
	if a.Precision > 0 {
		for k, c := range a.cells {
			d := DayCell{k.Version, Day.Truncate(k.Bucket)}
			if c.day = a.days[d]; c.day == nil {
				c.day = hll.MustNew(a.Precision)
				a.days[d] = c.day
			}
		}
	}
	return a, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) bytes32() []byte {
	if len(r.b) < 4 {
		r.fail()
		return nil
	}
	n := binary.LittleEndian.Uint32(r.b)
	if uint64(n) > uint64(len(r.b)-4) {
		r.fail()
		return nil
	}
	v := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return v
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
}
