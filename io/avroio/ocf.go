// Package avroio is lumen's Avro object container file format (OCF):
// Writer writes events (or any records) in it with null, deflate, snappy or
// zstandard blocks, and Reader reads the events of a file, or of a split of
// one, written by any conforming writer with a schema that resolves to
// lumen's pinned ones (DESIGN §1). Damaged files cost only what is damaged:
// Reader resynchronises on sync markers and reports each loss with a
// stable reason.
//
// It reads and writes bytes and streams, not paths: io/raw and
// io/deadletter open the files through io/blob.
package avroio

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/lumenhq/lumen/event"
)

// ocfMagic opens every Avro object container file.
const ocfMagic = "Obj\x01"

// syncLen is the length of an OCF sync marker.
const syncLen = 16

// maxBlockBytes bounds one block's compressed size. A larger size field is
// treated as corruption instead of an allocation request.
const maxBlockBytes = 256 << 20

// Codec is an OCF block compression codec.
type Codec uint8

// The codecs lumen reads and writes. Java Avro, fastavro and Spark write all
// of them; DESIGN §1 requires null, deflate and snappy.
const (
	CodecNull Codec = iota
	CodecDeflate
	CodecSnappy
	CodecZstandard
)

var codecNames = [...]string{CodecNull: "null", CodecDeflate: "deflate", CodecSnappy: "snappy", CodecZstandard: "zstandard"}

func (c Codec) String() string {
	if int(c) < len(codecNames) {
		return codecNames[c]
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec parses an avro.codec name; "" means null, as in the spec.
func ParseCodec(s string) (Codec, error) {
	if s == "" {
		return CodecNull, nil
	}
	for i, n := range codecNames {
		if n == s {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("avroio: unsupported codec %q (want null, deflate, snappy or zstandard)", s)
}

// Header is a parsed OCF header.
type Header struct {
	Schema []byte
	Codec  Codec
	Sync   [syncLen]byte
	Meta   map[string][]byte
	// Len is the header's size in bytes: the offset of the first block.
	Len int64
}

// ErrCorrupt classifies every failure caused by the bytes of a file rather
// than by the filesystem: bad magic, bad header, truncated or bad blocks,
// foreign schemas. Test with IsCorrupt.
var ErrCorrupt = errors.New("avroio: corrupt avro file")

// CorruptError locates a corruption. Reason is a stable code used for
// dead-letter records and metrics.
type CorruptError struct {
	Path   string
	Offset int64
	Reason Reason
	Detail string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("avroio: %s at offset %d: %s: %s", e.Path, e.Offset, e.Reason, e.Detail)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// IsCorrupt reports whether err is caused by a file's bytes, so retrying
// cannot help and the data belongs in the dead letter.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// Reason is a stable code for why data could not be read.
type Reason string

// File- and block-level reasons. Record-level reasons are event.Reason values.
const (
	ReasonEmptyFile     Reason = "empty_file"
	ReasonBadMagic      Reason = "bad_magic"
	ReasonBadHeader     Reason = "bad_header"
	ReasonBadCodec      Reason = "unsupported_codec"
	ReasonForeignSchema Reason = "foreign_schema"
	ReasonTruncated     Reason = "truncated_block"
	ReasonBadBlock      Reason = "bad_block"
	ReasonBadSync       Reason = "bad_sync_marker"
	ReasonDecompress    Reason = "decompress_failed"
	ReasonBadRecord     Reason = "bad_record"
	ReasonUnreadable    Reason = "unreadable_file"
	ReasonKindMismatch  Reason = "kind_mismatch"
)

// parseHeader parses an OCF header from the front of b. It returns
// errNeedMore if b is too short to hold the whole header.
func parseHeader(b []byte) (*Header, error) {
	if len(b) < len(ocfMagic) {
		if bytes.HasPrefix([]byte(ocfMagic), b) {
			return nil, errNeedMore
		}
		return nil, headerErr(ReasonBadMagic, "file does not start with Obj\\x01")
	}
	if string(b[:len(ocfMagic)]) != ocfMagic {
		return nil, headerErr(ReasonBadMagic, "file does not start with Obj\\x01")
	}
	pos := len(ocfMagic)
	meta := map[string][]byte{}
	for {
		n, used, err := event.ReadLong(b[pos:])
		if err != nil {
			return nil, needMoreOr(err, "metadata block count")
		}
		pos += used
		if n == 0 {
			break
		}
		if n < 0 { // a negative count is followed by the block's byte size
			n = -n
			_, used, err := event.ReadLong(b[pos:])
			if err != nil {
				return nil, needMoreOr(err, "metadata block size")
			}
			pos += used
		}
		if n > 1<<16 {
			return nil, headerErr(ReasonBadHeader, fmt.Sprintf("%d metadata entries", n))
		}
		for i := int64(0); i < n; i++ {
			k, used, err := readBytes(b[pos:])
			if err != nil {
				return nil, needMoreOr(err, "metadata key")
			}
			pos += used
			v, used, err := readBytes(b[pos:])
			if err != nil {
				return nil, needMoreOr(err, "metadata value")
			}
			pos += used
			meta[string(k)] = bytes.Clone(v)
		}
	}
	if len(b)-pos < syncLen {
		return nil, errNeedMore
	}
	h := &Header{Meta: meta, Schema: meta["avro.schema"], Len: int64(pos + syncLen)}
	copy(h.Sync[:], b[pos:pos+syncLen])
	if len(h.Schema) == 0 {
		return nil, headerErr(ReasonBadHeader, "no avro.schema in metadata")
	}
	c, err := ParseCodec(string(meta["avro.codec"]))
	if err != nil {
		return nil, headerErr(ReasonBadCodec, err.Error())
	}
	h.Codec = c
	return h, nil
}

var errNeedMore = errors.New("avroio: need more bytes")

func headerErr(r Reason, detail string) error {
	return &CorruptError{Reason: r, Detail: detail}
}

func needMoreOr(err error, what string) error {
	if errors.Is(err, event.ErrTruncated) {
		return errNeedMore
	}
	return headerErr(ReasonBadHeader, what+": "+err.Error())
}

// readBytes reads an Avro bytes/string value: a long length and the bytes.
func readBytes(b []byte) ([]byte, int, error) {
	n, used, err := event.ReadLong(b)
	if err != nil {
		return nil, 0, err
	}
	if n < 0 {
		return nil, 0, fmt.Errorf("%w: negative length", event.ErrMalformed)
	}
	if n > int64(len(b)-used) {
		return nil, 0, event.ErrTruncated
	}
	return b[used : used+int(n)], used + int(n), nil
}
