package hll

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

// Binary form, version 1.
//
//	byte 0   format version, 1
//	byte 1   precision p, 4..18
//	byte 2   mode: 0 sparse, 1 dense
//
// Sparse (mode 0), after the header:
//
//	uvarint  n, the number of entries, 0..T(p) (maxSparseEntries)
//	n × uvarint  the sorted entries (idx'<<6 | rho', see sparse.go) as
//	         deltas: the first entry itself, then each entry minus the
//	         previous one. Indexes are strictly increasing and rho' is
//	         1..40.
//
// Dense (mode 1), after the header: exactly 0.75·2^p bytes holding the 2^p
// registers, 6 bits each, in little-endian bit order: register i occupies
// bits 6i..6i+5 of the body read as one little-endian bit string, where bit
// k is bit k%8 (counting from the least significant) of byte k/8. So every
// 3 bytes hold 4 registers, b0 | b1<<8 | b2<<16 = r0 | r1<<6 | r2<<12 | r3<<18.
// Registers are 0..65-p, and enough of them are set for the sketch to have
// held more than T(p) sparse entries: each register covers 2^(25-p) sparse
// indexes, so fewer than T(p)/2^(25-p) set registers (2 at p=14) is a state
// no sketch reaches.
//
// Uvarints are encoding/binary's, always in their shortest form. Nothing
// follows the body. Any other input is rejected, which is what lets accepted
// bytes re-marshal to themselves.
const (
	formatVersion = 1
	modeSparse    = 0
	modeDense     = 1
	headerLen     = 3
)

var (
	_ encoding.BinaryMarshaler   = (*Sketch)(nil)
	_ encoding.BinaryAppender    = (*Sketch)(nil)
	_ encoding.BinaryUnmarshaler = (*Sketch)(nil)
)

// denseDataLen is the size of the dense body: 6 bits per register.
func denseDataLen(p uint8) int { return 1 << p * 6 / 8 }

// uvarintLen is the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// MarshalBinary returns the canonical version 1 encoding of s.
func (s *Sketch) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// AppendBinary appends the canonical version 1 encoding of s to b. It
// computes the encoded size first and grows b at most once, by that size, and
// allocates nothing else: appending to a buffer with room allocates nothing.
// The error is always nil; it is there for encoding.BinaryAppender.
func (s *Sketch) AppendBinary(b []byte) ([]byte, error) {
	s.drain()
	if s.regs != nil {
		n := denseDataLen(s.p)
		b = slices.Grow(b, headerLen+n)
		b = append(b, formatVersion, s.p, modeDense)
		start := len(b)
		b = b[:start+n]
		packRegisters(b[start:], s.regs)
		return b, nil
	}

	size := headerLen + uvarintLen(uint64(len(s.sparse)))
	var prev uint32
	for _, v := range s.sparse {
		size += uvarintLen(uint64(v - prev))
		prev = v
	}
	b = slices.Grow(b, size)
	b = append(b, formatVersion, s.p, modeSparse)
	b = binary.AppendUvarint(b, uint64(len(s.sparse)))
	prev = 0
	for _, v := range s.sparse {
		b = binary.AppendUvarint(b, uint64(v-prev))
		prev = v
	}
	return b, nil
}

// UnmarshalBinary replaces s with the sketch encoded in b, including its
// precision. It checks every constraint of the format, returning an error
// that wraps ErrCorrupt and says which, and leaving s unchanged, on any
// violation; so accepted input is canonical and re-marshals to the same
// bytes. It does not panic on any input, and does not keep b.
func (s *Sketch) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen {
		return corrupt("%d bytes is shorter than the %d-byte header", len(b), headerLen)
	}
	if b[0] != formatVersion {
		return corrupt("unsupported format version %d (want %d)", b[0], formatVersion)
	}
	p := b[1]
	if p < MinPrecision || p > MaxPrecision {
		return corrupt("precision %d outside [%d, %d]", p, MinPrecision, MaxPrecision)
	}
	maxSparse := maxSparseEntries(p)
	body := b[headerLen:]
	n := Sketch{p: p, maxSparse: maxSparse, flushAt: bufferLimit(maxSparse)}
	var err error
	switch b[2] {
	case modeSparse:
		n.sparse, err = decodeSparse(body, maxSparse)
	case modeDense:
		n.regs, err = decodeDense(body, p, maxSparse)
	default:
		err = corrupt("unknown mode %d", b[2])
	}
	if err != nil {
		return err
	}
	*s = n
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// readUvarint decodes a shortest-form uvarint at the start of b. On failure
// it returns why, for the caller to put in context; formatting here would
// cost an allocation per entry on the happy path.
func readUvarint(b []byte) (x uint64, n int, problem string) {
	x, n = binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, 0, "is truncated"
	case n < 0:
		return 0, 0, "overflows 64 bits"
	case n != uvarintLen(x):
		// Padded varints decode to the same value, but would re-marshal
		// to different bytes.
		return 0, 0, "is not a minimal varint"
	}
	return x, n, ""
}

func decodeSparse(body []byte, maxSparse int) ([]uint32, error) {
	count, n, problem := readUvarint(body)
	if problem != "" {
		return nil, corrupt("sparse entry count %s", problem)
	}
	if count > uint64(maxSparse) {
		// A sketch with more entries would have turned dense.
		return nil, corrupt("%d sparse entries exceed the sparse limit %d", count, maxSparse)
	}
	body = body[n:]
	if count > uint64(len(body)) {
		// Checked before allocating: every entry takes at least a byte.
		return nil, corrupt("truncated: %d sparse entries in %d bytes", count, len(body))
	}
	entries := make([]uint32, count)
	var prev uint64
	for i := range entries {
		d, n, problem := readUvarint(body)
		if problem != "" {
			return nil, corrupt("sparse entry %d %s", i, problem)
		}
		body = body[n:]
		if d == 0 {
			return nil, corrupt("sparse entry %d duplicates the previous one", i)
		}
		if d > maxSparseValue || prev+d > maxSparseValue {
			return nil, corrupt("sparse entry %d is out of range", i)
		}
		v := prev + d
		if i > 0 && v>>sparseRhoBits == prev>>sparseRhoBits {
			return nil, corrupt("sparse entry %d repeats index %d", i, v>>sparseRhoBits)
		}
		if rho := v & sparseRhoMask; rho < 1 || rho > maxSparseRho {
			return nil, corrupt("sparse entry %d has rho %d outside [1, %d]", i, rho, maxSparseRho)
		}
		entries[i] = uint32(v)
		prev = v
	}
	if len(body) != 0 {
		return nil, corrupt("%d trailing bytes after sparse entries", len(body))
	}
	return entries, nil
}

func decodeDense(body []byte, p uint8, maxSparse int) ([]uint8, error) {
	if want := denseDataLen(p); len(body) != want {
		if len(body) < want {
			return nil, corrupt("truncated: dense body of %d bytes, want %d", len(body), want)
		}
		return nil, corrupt("%d trailing bytes after dense registers", len(body)-want)
	}
	regs := make([]uint8, 1<<p)
	unpackRegisters(regs, body)
	set, over := checkRegisters(regs, maxDenseRho(p))
	if limit := maxDenseRho(p); over {
		i := slices.IndexFunc(regs, func(r uint8) bool { return r > limit })
		return nil, corrupt("register %d is %d, above the maximum %d for precision %d", i, regs[i], limit, p)
	}
	// Each register covers 2^(25-p) sparse indexes, so a sketch with this
	// few registers set held at most that many sparse entries and would
	// still be sparse.
	if set<<(sparsePrecision-p) <= maxSparse {
		return nil, corrupt("dense sketch with %d registers set could not have left sparse mode", set)
	}
	return regs, nil
}

// packRegisters writes regs, 6 bits each, into out (len(regs)*6/8 bytes).
func packRegisters(out []byte, regs []uint8) {
	for i, j := 0, 0; i+4 <= len(regs); i, j = i+4, j+3 {
		r := regs[i : i+4 : i+4]
		v := uint32(r[0]) | uint32(r[1])<<6 | uint32(r[2])<<12 | uint32(r[3])<<18
		o := out[j : j+3 : j+3]
		o[0], o[1], o[2] = byte(v), byte(v>>8), byte(v>>16)
	}
}

// unpackRegisters is the inverse of packRegisters.
func unpackRegisters(regs []uint8, in []byte) {
	for i, j := 0, 0; i+4 <= len(regs); i, j = i+4, j+3 {
		b := in[j : j+3 : j+3]
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		r := regs[i : i+4 : i+4]
		r[0], r[1], r[2], r[3] = uint8(v&63), uint8(v>>6&63), uint8(v>>12&63), uint8(v>>18&63)
	}
}

// checkRegisters returns the number of non-zero registers and whether any is
// above limit. Unpacked registers are below 64, so adding 127-limit (or 127)
// to each byte of a word cannot carry out of the byte and sets its top bit
// exactly when the register is above limit (or above zero): eight registers
// per step, without branches on the data.
func checkRegisters(regs []uint8, limit uint8) (set int, over bool) {
	const ones, hi = 0x0101010101010101, 0x8080808080808080
	add := ones * uint64(127-limit)
	var anyOver uint64
	for i := 0; i+8 <= len(regs); i += 8 {
		w := binary.LittleEndian.Uint64(regs[i : i+8 : i+8])
		anyOver |= (w + add) & hi
		set += bits.OnesCount64((w + ones*127) & hi)
	}
	return set, anyOver != 0
}
