package transforms

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/transforms/hll"
)

// Compact binary coders for the types that cross shuffles. Beam's default
// would be JSON for Agg (maps and pointers); AppKey needs a deterministic
// encoding to be a key.
func init() {
	beam.RegisterCoder(reflect.TypeOf(AppKey{}), EncodeAppKey, DecodeAppKey)
	beam.RegisterCoder(reflect.TypeOf(Agg{}), EncodeAgg, DecodeAgg)
	beam.RegisterCoder(reflect.TypeOf(event.Event{}), encodeEvent, decodeEvent)
}

var errShort = errors.New("transforms: truncated encoding")

// EncodeAppKey is AppKey's deterministic encoding: the kind byte, then the
// app id.
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

func encodeEvent(e event.Event) []byte {
	return event.AppendBinary([]byte{byte(e.Kind)}, &e)
}

func decodeEvent(b []byte) (event.Event, error) {
	if len(b) < 1 {
		return event.Event{}, errShort
	}
	var e event.Event
	k := event.Kind(b[0])
	if !k.Valid() {
		return e, fmt.Errorf("transforms: event coder: bad kind %d", b[0])
	}
	if _, err := event.NewDecoder().Decode(k, b[1:], &e); err != nil {
		return e, err
	}
	return e.Clone(), nil
}

const aggCoderVersion = 1

// EncodeAgg is Agg's wire form: version, granularity, precision, the count
// cells, then the sketches in their own stable binary form.
func EncodeAgg(a Agg) ([]byte, error) {
	b := make([]byte, 0, 16+len(a.Counts)*16+len(a.Users)*64)
	b = append(b, aggCoderVersion, byte(a.Gran), a.Precision)
	b = binary.AppendUvarint(b, uint64(len(a.Counts)))
	for c, n := range a.Counts {
		b = appendString(b, c.Version)
		b = binary.AppendVarint(b, c.Bucket)
		b = binary.AppendVarint(b, n)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Users)))
	for c, s := range a.Users {
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
		return Agg{}, fmt.Errorf("transforms: Agg coder: bad header")
	}
	a := NewAgg(Granularity(b[1]), b[2])
	r := reader{b: b[3:]}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		v := r.string()
		bucket := r.varint()
		a.Counts[Cell{v, bucket}] += r.varint()
	}
	n = r.uvarint()
	if n > 0 && a.Users == nil {
		return Agg{}, fmt.Errorf("transforms: Agg coder: sketches without precision")
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
			return Agg{}, fmt.Errorf("transforms: Agg coder: %w", err)
		}
		a.Users[DayCell{v, day}] = s
	}
	if r.err != nil {
		return Agg{}, r.err
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
