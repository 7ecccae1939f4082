package event

import (
	"errors"
	"fmt"
)

// ErrTruncated and ErrMalformed classify binary decoding failures. Test with
// errors.Is; the wrapping *DecodeError says which field.
var (
	ErrTruncated = errors.New("event: truncated record")
	ErrMalformed = errors.New("event: malformed record")
)

// DecodeError reports which field of which kind failed to decode.
type DecodeError struct {
	Kind  Kind
	Field string
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("event: decode %s.%s: %v", e.Kind, e.Field, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Decoder decodes the Avro binary encoding of records written with the
// pinned schemas (DESIGN §1), field by field in schema order, without
// building goavro's native maps. It is roughly an order of magnitude faster
// than goavro (DESIGN §7a) and is the batch layer's hot path.
//
// A Decoder interns app ids, versions, platforms and signatures, which repeat
// endlessly, so steady-state decoding allocates nothing. The DeviceID of a
// decoded Event aliases the input buffer; copy it (Event.Clone) to keep it
// past the buffer's reuse. A Decoder is not safe for concurrent use.
type Decoder struct {
	intern map[string]string
}

// maxInterned bounds the intern table; a pathological input with unique
// strings resets it rather than growing without bound.
const maxInterned = 1 << 16

// NewDecoder returns a Decoder with an empty intern table.
func NewDecoder() *Decoder { return &Decoder{intern: make(map[string]string, 256)} }

func (d *Decoder) str(b []byte) string {
	if s, ok := d.intern[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	d.intern[s] = s
	return s
}

// Decode decodes one record of kind k from the front of buf into ev and
// returns the number of bytes it used.
func (d *Decoder) Decode(k Kind, buf []byte, ev *Event) (int, error) {
	r := binReader{buf: buf}
	ev.Kind = k
	b, err := r.bytes()
	if err != nil {
		return 0, &DecodeError{k, "app_id", err}
	}
	ev.AppID = d.str(b)
	if b, err = r.bytes(); err != nil {
		return 0, &DecodeError{k, "app_version", err}
	}
	ev.AppVersion = d.str(b)
	if b, err = r.bytes(); err != nil {
		return 0, &DecodeError{k, "platform", err}
	}
	ev.Platform = d.str(b)
	if ev.DeviceID, err = r.bytes(); err != nil {
		return 0, &DecodeError{k, "device_id", err}
	}
	if ev.EventTime, err = r.long(); err != nil {
		return 0, &DecodeError{k, "event_time", err}
	}
	if ev.ReceivedTime, err = r.long(); err != nil {
		return 0, &DecodeError{k, "received_time", err}
	}
	ev.Signature = ""
	if k.HasSignature() {
		if b, err = r.bytes(); err != nil {
			return 0, &DecodeError{k, "signature", err}
		}
		ev.Signature = d.str(b)
	}
	return r.pos, nil
}

type binReader struct {
	buf []byte
	pos int
}

// long reads a zig-zag varint, at most 10 bytes.
func (r *binReader) long() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.pos >= len(r.buf) {
			return 0, ErrTruncated
		}
		c := r.buf[r.pos]
		r.pos++
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, fmt.Errorf("%w: varint longer than 10 bytes", ErrMalformed)
}

func (r *binReader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: negative length %d", ErrMalformed, n)
	}
	if n > int64(len(r.buf)-r.pos) {
		return nil, ErrTruncated
	}
	b := r.buf[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// AppendBinary appends the Avro binary encoding of e, in the pinned schema
// of e.Kind, to buf.
func AppendBinary(buf []byte, e *Event) []byte {
	buf = appendString(buf, e.AppID)
	buf = appendString(buf, e.AppVersion)
	buf = appendString(buf, e.Platform)
	buf = appendLong(buf, int64(len(e.DeviceID)))
	buf = append(buf, e.DeviceID...)
	buf = appendLong(buf, e.EventTime)
	buf = appendLong(buf, e.ReceivedTime)
	if e.Kind.HasSignature() {
		buf = appendString(buf, e.Signature)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = appendLong(buf, int64(len(s)))
	return append(buf, s...)
}

func appendLong(buf []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		buf = append(buf, byte(u)|0x80)
		u >>= 7
	}
	return append(buf, byte(u))
}

// AppendLong appends the Avro (zig-zag varint) encoding of v; the OCF
// container uses it for block counts and sizes.
func AppendLong(buf []byte, v int64) []byte { return appendLong(buf, v) }

// ReadLong decodes an Avro long from the front of buf and returns it with the
// number of bytes used.
func ReadLong(buf []byte) (int64, int, error) {
	r := binReader{buf: buf}
	v, err := r.long()
	return v, r.pos, err
}

// Clone returns a copy of e that shares no memory with a decode buffer.
func (e Event) Clone() Event {
	e.DeviceID = append([]byte(nil), e.DeviceID...)
	return e
}
