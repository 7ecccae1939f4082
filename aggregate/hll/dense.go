package hll

import (
	"encoding/binary"
	"math/bits"
)

// Dense representation: 2^p registers, one byte each, register i holding the
// maximum rho over the hashes whose top p bits are i, where rho = 1 + the
// number of leading zeros of the other 64-p bits. rho is at most 65-p (all
// bits zero), 61 at MinPrecision, so it always fits the 6 bits of the
// serialised form without capping.

// maxDenseRho is the largest register value at precision p.
func maxDenseRho(p uint8) uint8 { return 64 - p + 1 }

// addDense records hash h in regs.
func addDense(regs []uint8, p uint8, h uint64) {
	idx := h >> (64 - p)
	// The sentinel bit at p-1 ends up just below the 64-p rho bits, capping
	// the leading-zero count at 64-p when those bits are all zero.
	rho := uint8(bits.LeadingZeros64(h<<p|1<<(p-1))) + 1
	if rho > regs[idx] {
		regs[idx] = rho
	}
}

// maxRegisters sets dst[i] = max(dst[i], src[i]); the slices have the same
// length, a multiple of 8 (2^p with p >= 4).
//
// It works on eight registers per step (SWAR). Registers are below 128, so
// with each byte's top bit forced on, (a|0x80) - b cannot borrow across bytes
// and leaves the top bit set exactly where a >= b; spreading that bit over
// its byte gives the mask that selects a or b. At p=14 this is a few times
// faster than the byte loop, and dense merges are what the batch layer does
// most.
func maxRegisters(dst, src []uint8) {
	const hi = 0x8080808080808080
	src = src[:len(dst)]
	for i := 0; i+8 <= len(dst); i += 8 {
		d, s := dst[i:i+8:i+8], src[i:i+8:i+8]
		a := binary.LittleEndian.Uint64(d)
		b := binary.LittleEndian.Uint64(s)
		ge := ((a | hi) - b) & hi
		mask := (ge >> 7) * 0xff
		binary.LittleEndian.PutUint64(d, a&mask|b&^mask)
	}
}
