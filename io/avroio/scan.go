package avroio

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/lumenhq/lumen/event"
)

// maxDecompressed bounds one decompressed block, so a hostile block cannot
// make a worker allocate without limit.
const maxDecompressed = 1 << 30

// minReadChunk is how much the scanner asks the underlying reader for at a
// time when it streams.
const minReadChunk = 64 << 10

// block is one verified, decompressed OCF block. Data is valid until the
// scanner's next call.
type block struct {
	Offset int64 // file offset of the block's count field
	Count  int64
	Data   []byte
}

// scanner reads the blocks of one OCF file, or of one split of it, from a
// stream. It verifies each block's trailing sync marker before handing the
// block out, and after a bad block it resynchronises on the next sync marker,
// so the good blocks of a damaged file are still read (the Avro spec's sync
// markers exist for exactly this, and for splitting).
//
// It owns a growable buffer: a block is parsed in place and consumed only
// once it has been verified, so a bad size field never swallows the good
// blocks after it.
type scanner struct {
	r    io.Reader
	path string
	size int64 // file size if known, else -1

	buf      []byte
	off, end int
	pos      int64 // file offset of buf[off]
	eof      bool

	hdr    *Header
	stopAt int64 // blocks starting at or beyond stopAt belong to the next split; <0 = none

	flate io.ReadCloser
	zstd  *zstd.Decoder
	out   []byte
}

// newScanner returns a scanner over r positioned at file offset pos.
func newScanner(r io.Reader, path string, pos, size int64) *scanner {
	return &scanner{r: r, path: path, pos: pos, size: size, stopAt: -1}
}

// newBytesScanner scans a whole file held in memory, without copying it.
func newBytesScanner(b []byte, path string) *scanner {
	return &scanner{buf: b, end: len(b), eof: true, path: path, size: int64(len(b)), stopAt: -1}
}

// fill makes at least n unconsumed bytes available. It returns
// io.ErrUnexpectedEOF if the stream ends first, and any other read error
// as is: those are filesystem failures, not corruption.
func (s *scanner) fill(n int) error {
	if s.end-s.off >= n {
		return nil
	}
	if s.eof {
		return io.ErrUnexpectedEOF
	}
	if len(s.buf)-s.off < n+minReadChunk {
		need := max(n+minReadChunk, 2*len(s.buf))
		if s.off > 0 && len(s.buf) >= n+minReadChunk {
			copy(s.buf, s.buf[s.off:s.end])
		} else {
			nb := make([]byte, need)
			copy(nb, s.buf[s.off:s.end])
			s.buf = nb
		}
		s.end -= s.off
		s.off = 0
	}
	for s.end-s.off < n {
		m, err := s.r.Read(s.buf[s.end:])
		s.end += m
		if err == io.EOF {
			s.eof = true
			break
		}
		if err != nil {
			return fmt.Errorf("avroio: read %s: %w", s.path, err)
		}
	}
	if s.end-s.off < n {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func (s *scanner) consume(n int) {
	s.off += n
	s.pos += int64(n)
}

func (s *scanner) corrupt(off int64, r Reason, format string, args ...any) *CorruptError {
	return &CorruptError{Path: s.path, Offset: off, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// readHeader parses the header at the start of the file.
func (s *scanner) readHeader() (*Header, error) {
	for want := 512; ; want *= 2 {
		err := s.fill(want)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if s.end == s.off {
			return nil, s.corrupt(0, ReasonEmptyFile, "file is empty")
		}
		h, perr := parseHeader(s.buf[s.off:s.end])
		if perr == nil {
			s.hdr = h
			s.consume(int(h.Len))
			return h, nil
		}
		if !errors.Is(perr, errNeedMore) {
			var ce *CorruptError
			if errors.As(perr, &ce) {
				ce.Path = s.path
			}
			return nil, perr
		}
		if s.eof || want > 16<<20 {
			return nil, s.corrupt(0, ReasonBadHeader, "header truncated or larger than 16 MiB")
		}
	}
}

// next returns the next good block; or, for a damaged region, a non-nil
// *CorruptError (scanning may continue); or io.EOF at the end of the file or
// split; or another error from the filesystem.
func (s *scanner) next() (*block, *CorruptError, error) {
	start := s.pos
	if s.stopAt >= 0 && start >= s.stopAt {
		return nil, nil, io.EOF
	}
	if err := s.fill(20); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, nil, err
	}
	if s.end == s.off {
		return nil, nil, io.EOF
	}
	b := s.buf[s.off:s.end]
	count, n1, err := event.ReadLong(b)
	if err != nil {
		return nil, s.skipBad(start, ReasonTruncated, "block count: %v", err), nil
	}
	size, n2, err := event.ReadLong(b[n1:])
	if err != nil {
		return nil, s.skipBad(start, ReasonTruncated, "block size: %v", err), nil
	}
	if count < 0 || size < 0 || size > maxBlockBytes {
		return nil, s.skipBad(start, ReasonBadBlock, "block count %d, size %d", count, size), nil
	}
	total := n1 + n2 + int(size) + syncLen
	if s.size >= 0 && start+int64(total) > s.size {
		return nil, s.skipBad(start, ReasonTruncated, "block of %d bytes runs past end of file (%d)", total, s.size), nil
	}
	if err := s.fill(total); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, s.skipBad(start, ReasonTruncated, "block of %d bytes, file ends after %d", total, s.end-s.off), nil
		}
		return nil, nil, err
	}
	b = s.buf[s.off : s.off+total]
	if !bytes.Equal(b[total-syncLen:], s.hdr.Sync[:]) {
		return nil, s.skipBad(start, ReasonBadSync, "block %d records, %d bytes: sync marker mismatch", count, size), nil
	}
	data := b[n1+n2 : n1+n2+int(size)]
	out, derr := s.decompress(data)
	s.consume(total)
	if derr != nil {
		// The framing is intact, so only this block is lost.
		return nil, s.corrupt(start, ReasonDecompress, "%d records lost: %v", count, derr), nil
	}
	return &block{Offset: start, Count: count, Data: out}, nil, nil
}

// skipBad reports a damaged region starting at off and moves past it to the
// next sync marker, searching from one byte after off.
func (s *scanner) skipBad(off int64, r Reason, format string, args ...any) *CorruptError {
	ce := s.corrupt(off, r, format, args...)
	s.consume(1)
	for {
		b := s.buf[s.off:s.end]
		if i := bytes.Index(b, s.hdr.Sync[:]); i >= 0 {
			s.consume(i + syncLen)
			ce.Detail += fmt.Sprintf("; skipped to next sync marker at %d", s.pos)
			return ce
		}
		keep := min(len(b), syncLen-1)
		s.consume(len(b) - keep)
		if err := s.fill(keep + 1); err != nil {
			s.consume(s.end - s.off)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				ce.Detail += "; no sync marker after it"
			} else {
				ce.Detail += "; read failed while resynchronising: " + err.Error()
			}
			return ce
		}
	}
}

// seekSplit positions a scanner opened at file offset pos >= 0 at the first
// block starting at or after split start, per the Avro convention that a
// block belongs to the split in which it starts.
func (s *scanner) seekSplit(start int64) error {
	if start <= s.pos {
		return nil
	}
	// Search from start-16 so a marker ending exactly at start is found.
	skip := start - syncLen - s.pos
	for skip > 0 {
		if err := s.fill(1); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return io.EOF
			}
			return err
		}
		n := min(int64(s.end-s.off), skip)
		s.consume(int(n))
		skip -= n
	}
	for {
		b := s.buf[s.off:s.end]
		if i := bytes.Index(b, s.hdr.Sync[:]); i >= 0 {
			s.consume(i + syncLen)
			return nil
		}
		keep := min(len(b), syncLen-1)
		s.consume(len(b) - keep)
		if err := s.fill(keep + 1); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				s.consume(s.end - s.off)
				return io.EOF
			}
			return err
		}
	}
}

func (s *scanner) decompress(data []byte) ([]byte, error) {
	switch s.hdr.Codec {
	case CodecNull:
		return data, nil
	case CodecDeflate:
		if s.flate == nil {
			s.flate = flate.NewReader(bytes.NewReader(data))
		} else if err := s.flate.(flate.Resetter).Reset(bytes.NewReader(data), nil); err != nil {
			return nil, err
		}
		out := s.out[:0]
		for {
			if len(out) == cap(out) {
				if len(out) >= maxDecompressed {
					return nil, fmt.Errorf("deflate block inflates past %d bytes", maxDecompressed)
				}
				out = append(out, 0)[:len(out)]
			}
			n, err := s.flate.Read(out[len(out):cap(out)])
			out = out[:len(out)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		s.out = out
		return out, nil
	case CodecSnappy:
		if len(data) < 4 {
			return nil, errors.New("snappy block shorter than its checksum")
		}
		body, sum := data[:len(data)-4], data[len(data)-4:]
		n, err := s2.DecodedLen(body)
		if err != nil {
			return nil, err
		}
		if n > maxDecompressed {
			return nil, fmt.Errorf("snappy block claims %d bytes", n)
		}
		if cap(s.out) < n {
			s.out = make([]byte, n)
		}
		out, err := s2.Decode(s.out[:n], body)
		if err != nil {
			return nil, err
		}
		want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
		if got := crc32.ChecksumIEEE(out); got != want {
			return nil, fmt.Errorf("snappy checksum %08x, want %08x", got, want)
		}
		return out, nil
	case CodecZstandard:
		if s.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))
			if err != nil {
				return nil, err
			}
			s.zstd = d
		}
		out, err := s.zstd.DecodeAll(data, s.out[:0])
		if err != nil {
			return nil, err
		}
		s.out = out
		return out, nil
	}
	return nil, fmt.Errorf("codec %v", s.hdr.Codec)
}

// close releases decompressor state.
func (s *scanner) close() {
	if s.zstd != nil {
		s.zstd.Close()
	}
}
