package avroio

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/s2"
	"github.com/linkedin/goavro/v2"

	"github.com/lumenhq/lumen/event"
)

// Writer writes an Avro object container file. goavro writes the header
// (schema, codec, metadata, sync marker); records are appended already
// encoded, so the pinned event schemas take the specialised encoder and any
// other schema (dead letters) goavro's. Blocks are cut at a target size.
type Writer struct {
	w         io.Writer
	codec     Codec
	sync      [syncLen]byte
	blockSize int
	block     []byte
	count     int64
	frame     []byte
	comp      []byte
	flate     *flate.Writer
	records   int64
	err       error
}

// NewWriter writes an OCF header for schemaJSON to w and returns a Writer for
// its records. With the same options, the output is byte-for-byte
// deterministic.
func NewWriter(w io.Writer, schemaJSON string, opts ...WriterOption) (*Writer, error) {
	o := writerOptions{codec: CodecNull, blockSize: 64 << 10}
	for _, opt := range opts {
		opt(&o)
	}
	if o.codec > CodecZstandard {
		return nil, fmt.Errorf("avroio: unsupported codec %v", o.codec)
	}
	// goavro's header writer knows null, deflate and snappy only, so lumen
	// reads zstandard but does not write it.
	if o.codec == CodecZstandard {
		return nil, fmt.Errorf("avroio: writing zstandard is not supported (reading is)")
	}
	hdr, err := header(schemaJSON, o)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	var h Header
	copy(h.Sync[:], hdr[len(hdr)-syncLen:])
	return &Writer{w: w, codec: o.codec, sync: h.Sync, blockSize: o.blockSize}, nil
}

// headerCache keeps goavro-written headers by schema and codec: building a
// goavro codec parses the schema, which costs more than writing a small
// file. Headers with user metadata are not cached.
var headerCache sync.Map // headerKey -> []byte

type headerKey struct {
	schema string
	codec  Codec
}

// header returns the OCF header for schemaJSON with o's codec, metadata and
// sync marker (random if unset).
func header(schemaJSON string, o writerOptions) ([]byte, error) {
	key := headerKey{schemaJSON, o.codec}
	var base []byte
	if v, ok := headerCache.Load(key); ok && o.meta == nil {
		base = v.([]byte)
	} else {
		var hdr bytes.Buffer
		if _, err := goavro.NewOCFWriter(goavro.OCFConfig{
			W: &hdr, Schema: schemaJSON, CompressionName: o.codec.String(), MetaData: o.meta,
		}); err != nil {
			return nil, fmt.Errorf("avroio: OCF header: %w", err)
		}
		if _, err := parseHeader(hdr.Bytes()); err != nil {
			return nil, fmt.Errorf("avroio: goavro wrote an unreadable header: %w", err)
		}
		base = hdr.Bytes()
		if o.meta == nil {
			headerCache.Store(key, base)
		}
	}
	out := bytes.Clone(base)
	sync := o.sync
	if sync == ([syncLen]byte{}) {
		if _, err := rand.Read(sync[:]); err != nil {
			return nil, err
		}
	}
	copy(out[len(out)-syncLen:], sync[:])
	return out, nil
}

// NewEventWriter is NewWriter with the pinned schema of kind k.
func NewEventWriter(w io.Writer, k event.Kind, opts ...WriterOption) (*Writer, error) {
	return NewWriter(w, event.SchemaOf(k).JSON, opts...)
}

// WriterOption configures NewWriter.
type WriterOption func(*writerOptions)

type writerOptions struct {
	codec     Codec
	sync      [syncLen]byte
	blockSize int
	meta      map[string][]byte
}

// WithCodec sets the block codec. Default null.
func WithCodec(c Codec) WriterOption { return func(o *writerOptions) { o.codec = c } }

// WithSyncMarker fixes the sync marker, for deterministic output. Default:
// random, as goavro and Java choose it.
func WithSyncMarker(s [16]byte) WriterOption { return func(o *writerOptions) { o.sync = s } }

// WithBlockSize sets the uncompressed block size at which a block is cut.
// Default 64 KiB.
func WithBlockSize(n int) WriterOption { return func(o *writerOptions) { o.blockSize = n } }

// WithMetadata adds user metadata to the header.
func WithMetadata(m map[string][]byte) WriterOption { return func(o *writerOptions) { o.meta = m } }

// AppendEvent appends one event in its kind's pinned schema. All events of a
// file must share the writer's schema: the caller writes one kind per file.
func (w *Writer) AppendEvent(e *event.Event) error {
	w.block = event.AppendBinary(w.block, e)
	return w.appended()
}

// AppendEncoded appends one record already in Avro binary form.
func (w *Writer) AppendEncoded(rec []byte) error {
	w.block = append(w.block, rec...)
	return w.appended()
}

func (w *Writer) appended() error {
	w.count++
	w.records++
	if len(w.block) >= w.blockSize {
		return w.Flush()
	}
	return w.err
}

// Records is how many records were appended.
func (w *Writer) Records() int64 { return w.records }

// Flush writes the pending block, if any.
func (w *Writer) Flush() error {
	if w.err != nil || w.count == 0 {
		return w.err
	}
	data := w.block
	switch w.codec {
	case CodecDeflate:
		var buf bytes.Buffer
		buf.Grow(len(data) / 2)
		if w.flate == nil {
			w.flate, _ = flate.NewWriter(&buf, flate.DefaultCompression)
		} else {
			w.flate.Reset(&buf)
		}
		w.flate.Write(data)
		if err := w.flate.Close(); err != nil {
			w.err = err
			return err
		}
		data = buf.Bytes()
	case CodecSnappy:
		// Plain snappy block format, which s2 writes compatibly, plus the
		// big-endian CRC-32 of the uncompressed data that Avro requires.
		w.comp = s2.EncodeSnappy(w.comp[:cap(w.comp)], data)
		w.comp = binary.BigEndian.AppendUint32(w.comp, crc32.ChecksumIEEE(data))
		data = w.comp
	}
	w.frame = event.AppendLong(w.frame[:0], w.count)
	w.frame = event.AppendLong(w.frame, int64(len(data)))
	w.frame = append(w.frame, data...)
	w.frame = append(w.frame, w.sync[:]...)
	if _, err := w.w.Write(w.frame); err != nil {
		w.err = err
		return err
	}
	w.block = w.block[:0]
	w.count = 0
	return nil
}

// Close flushes the last block. It does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }
