package event

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Single-object encoding (Avro specification): the two marker bytes, the
// 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema, then
// the Avro binary record. lumen's Kafka values use it (DESIGN §2).
const singleHeaderLen = 10

var singleMarker = [2]byte{0xC3, 0x01}

// ErrNotSingleObject means a message does not start with the single-object
// marker. ErrUnknownFingerprint means its fingerprint names no pinned schema.
var (
	ErrNotSingleObject    = errors.New("event: not Avro single-object encoded")
	ErrUnknownFingerprint = errors.New("event: unknown schema fingerprint")
)

// AppendSingle appends e in single-object encoding with the specification's
// fingerprint, the one Java producers write.
func AppendSingle(buf []byte, e *Event) []byte {
	buf = append(buf, singleMarker[:]...)
	buf = binary.LittleEndian.AppendUint64(buf, SchemaOf(e.Kind).Fingerprint)
	return AppendBinary(buf, e)
}

// KindOfFingerprint maps a single-object fingerprint to its kind. It accepts
// the specification's fingerprint and goavro's (see Schema.GoavroFingerprint).
func KindOfFingerprint(fp uint64) (Kind, bool) {
	for _, k := range Kinds {
		s := SchemaOf(k)
		if fp == s.Fingerprint || fp == s.GoavroFingerprint {
			return k, true
		}
	}
	return 0, false
}

// DecodeSingle decodes a single-object encoded message into ev. The kind
// comes from the fingerprint. Trailing bytes after the record are an error:
// a message is exactly one record.
func (d *Decoder) DecodeSingle(msg []byte, ev *Event) error {
	if len(msg) < singleHeaderLen || msg[0] != singleMarker[0] || msg[1] != singleMarker[1] {
		return ErrNotSingleObject
	}
	fp := binary.LittleEndian.Uint64(msg[2:singleHeaderLen])
	k, ok := KindOfFingerprint(fp)
	if !ok {
		return fmt.Errorf("%w %#016x", ErrUnknownFingerprint, fp)
	}
	n, err := d.Decode(k, msg[singleHeaderLen:], ev)
	if err != nil {
		return err
	}
	if rest := len(msg) - singleHeaderLen - n; rest != 0 {
		return fmt.Errorf("%w: %d trailing bytes after %s record", ErrMalformed, rest, k)
	}
	return nil
}
