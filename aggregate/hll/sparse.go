package hll

import (
	"math/bits"
	"slices"
)

// Sparse representation (HyperLogLog++ §5.3).
//
// While few devices have been seen, a sketch does not keep 2^p registers but
// a list of entries at the much finer sparse precision p' = 25, one per
// distinct 25-bit index, each packed in a uint32 as
//
//	idx'<<6 | rho'
//
// where idx' is the top 25 bits of the hash and rho' = 1 + the number of
// leading zeros of the remaining 39 bits (so 1..40). Because idx' is in the
// high bits, sorting entries as integers sorts by index and then by rho', and
// the last entry of a run of equal indexes carries the maximum rho'. Entries
// use 31 bits, which keeps the varint deltas of the encoding short.
//
// The list is independent of p; p only decides when the list is abandoned for
// registers and how entries fold into them (denseFromSparse).
const (
	sparsePrecision = 25
	sparseRhoBits   = 6
	sparseRhoMask   = 1<<sparseRhoBits - 1
	maxSparseRho    = 64 - sparsePrecision + 1 // 40: all 39 bits zero

	// maxSparseValue is the largest possible entry: the last index with
	// the largest rho'. Every delta in the encoding is at most this.
	maxSparseValue = (1<<sparsePrecision-1)<<sparseRhoBits | maxSparseRho
)

// sparseEntry packs the sparse entry of hash h.
func sparseEntry(h uint64) uint32 {
	idx := uint32(h >> (64 - sparsePrecision))
	// The sentinel bit just below the 39 rho bits caps the count at 39
	// leading zeros (rho' 40) when those bits are all zero.
	rho := uint32(bits.LeadingZeros64(h<<sparsePrecision|1<<(sparsePrecision-1))) + 1
	return idx<<sparseRhoBits | rho
}

// denseFromSparse returns the dense register index and rho at precision p of
// any hash whose sparse entry is e. The dense rho counts leading zeros in the
// 64-p bits after the register index, which are the low 25-p bits of idx'
// followed by the 39 bits that rho' was computed on: if those low index bits
// are not all zero the run ends inside them, otherwise it continues for
// rho'-1 more zeros into the 39 bits. All hashes sharing e therefore share
// the dense register value, so converting entries equals inserting hashes.
func denseFromSparse(e uint32, p uint8) (idx uint32, rho uint8) {
	ip := e >> sparseRhoBits
	shift := sparsePrecision - p
	idx = ip >> shift
	low := ip & (1<<shift - 1)
	if low != 0 {
		// low has shift significant bits inside a uint32.
		return idx, uint8(bits.LeadingZeros32(low)-(32-int(shift))) + 1
	}
	return idx, uint8(e&sparseRhoMask) + shift
}

// maxSparseEntries returns the sparse→dense threshold T(p): a sketch is
// sparse while it holds at most T(p) entries and turns dense on the first
// drain that leaves more.
//
// T(p) is the largest n for which the worst-case sparse encoding of n entries
// (uvarint count plus n uvarint deltas, arranged to be as long as possible)
// is no longer than the dense encoding (0.75*2^p bytes after the common
// header), so a stored sparse sketch is never larger than the dense one it
// stands in for. Typical sparse sketches are smaller still: with random
// hashes the deltas average 2^31/n. Fixing T by a worst case rather than by
// the size of the actual encoding keeps the mode a function of the entry
// count alone, which is simpler to reason about and to validate.
//
// Values: T(4)=2, T(10)=190, T(12)=767, T(14)=3761 (23% of the register
// count), T(16)=16081, T(18)=65362. TestMaxSparseEntries pins them; changing
// T changes the format.
func maxSparseEntries(p uint8) int {
	budget := denseDataLen(p)
	// Sizes grow with n, so binary search for the last n that fits; 2^p
	// entries need at least 2^p bytes, more than the budget.
	lo, hi := 0, 1<<p
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if worstSparseDataLen(mid) <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// worstSparseDataLen bounds the sparse encoding of n entries after the
// header: the count plus the longest possible n deltas. Deltas are at least 1
// and sum to the last entry, at most maxSparseValue. A delta needs k+1 bytes
// once it reaches 2^(7k), so lengthening one delta from k to k+1 bytes costs
// 2^(7k)-2^(7(k-1)) of the sum; those costs grow with k, so spending the sum
// on the cheapest lengthenings first, level by level, is optimal.
func worstSparseDataLen(n int) int {
	size := uvarintLen(uint64(n)) + n
	remaining := maxSparseValue - n
	for k := 1; k < 5; k++ {
		cost := 1<<(7*k) - 1<<(7*(k-1))
		up := min(n, remaining/cost)
		size += up
		remaining -= up * cost
		if up < n {
			break
		}
	}
	return size
}

// bufferLimit is how many entries are buffered before a drain. Draining
// costs a linear sort of the buffer plus a pass over the whole list, so the
// buffer is made proportional to the threshold (half of it) to keep the
// amortised cost per Add constant; the floor keeps tiny precisions from
// draining on nearly every Add. Buffer size does not affect the sketch's
// value, only when work is done. The cost is memory: a sketch seeing many
// events from few devices holds up to this many (duplicate) entries, 7.3 KiB
// at p=14, on top of the list.
func bufferLimit(maxSparse int) int { return max(maxSparse/2, 256) }

// drain merges the insertion buffer into the sorted list and converts the
// sketch to dense if the list now exceeds the threshold. Every method that
// observes the sketch drains first, which is what makes the mode a function
// of the set of entries rather than of when buffers happened to fill.
func (s *Sketch) drain() {
	s.init()
	if s.regs != nil {
		return
	}
	if k := len(s.buf); k > 0 {
		// The merge needs room for len(buf) more entries in the list
		// anyway; until then that room is the sort's scratch space.
		s.sparse = slices.Grow(s.sparse, k)
		n := len(s.sparse)
		sortByIndex(s.buf, s.sparse[n:n+k])
		s.sparse = mergeSorted(s.sparse, dedupeSorted(s.buf))
		s.buf = s.buf[:0]
	}
	if len(s.sparse) > s.maxSparse {
		s.toDense()
	}
}

// toDense replaces the sparse state with registers. The caller has drained
// the buffer or does not need it (it is folded anyway, at no cost if empty).
func (s *Sketch) toDense() {
	regs := make([]uint8, 1<<s.p)
	foldSparse(regs, s.p, s.sparse)
	foldSparse(regs, s.p, s.buf)
	s.regs = regs
	s.sparse, s.buf = nil, nil
}

// foldSparse max-merges sparse entries, in any order, into dense registers.
func foldSparse(regs []uint8, p uint8, entries []uint32) {
	for _, e := range entries {
		idx, rho := denseFromSparse(e, p)
		if rho > regs[idx] {
			regs[idx] = rho
		}
	}
}

// dedupeSorted keeps one entry per index of a, which is sorted by index,
// in place: the one with the largest rho'. Entries with equal indexes are
// adjacent but, as sortByIndex ignores rho', in any order.
func dedupeSorted(a []uint32) []uint32 {
	if len(a) == 0 {
		return a
	}
	w := 0
	for i := 1; i < len(a); i++ {
		v := a[i]
		if v>>sparseRhoBits != a[w]>>sparseRhoBits {
			w++
			a[w] = v
		} else {
			// Same index: the larger value has the larger rho'.
			a[w] = max(a[w], v)
		}
	}
	return a[:w+1]
}

// noIndex is larger than any 25-bit index, so no entry matches it.
const noIndex = 1 << 31

// mergeSorted merges src into dst, both sorted with distinct indexes,
// keeping the larger rho' where an index is in both, and returns the result.
// It merges backwards into dst's spare capacity, so draining allocates only
// when the list outgrows its capacity.
//
// The loop branches on the comparison of hash-derived values. A branchless
// version (conditional moves) measured nearly twice as slow: it turns the
// loop into a chain of dependent loads, while the branchy one overlaps
// iterations.
func mergeSorted(dst, src []uint32) []uint32 {
	if len(src) == 0 {
		return dst
	}
	n := len(dst)
	end := n + len(src)
	dst = slices.Grow(dst, len(src))[:end]
	// dst[w:end] is the output so far. Each step reads one entry and
	// writes at most one, so w stays above every unread position of dst.
	w := end
	i, j := n-1, len(src)-1
	last := uint32(noIndex) // the index of dst[w]
	for j >= 0 {
		var v uint32
		if i >= 0 && dst[i] > src[j] {
			v = dst[i]
			i--
		} else {
			v = src[j]
			j--
		}
		// Walking downwards, the first entry seen for an index has the
		// largest rho'; a later one with the same index is dropped.
		if idx := v >> sparseRhoBits; idx != last {
			w--
			dst[w] = v
			last = idx
		}
	}
	// What is left of dst is below everything written and already in
	// place, but its top entry may share an index with the lowest written.
	if i >= 0 && dst[i]>>sparseRhoBits == last {
		i--
	}
	if w == i+1 {
		return dst // nothing was dropped: the two parts are contiguous
	}
	k := copy(dst[i+1:], dst[w:end])
	return dst[:i+1+k]
}

// sortByIndex sorts a by index (the top 25 of the 31 used bits), leaving
// entries with equal indexes in any order for dedupeSorted, using scratch
// (same length) as the second buffer. It is an LSD radix sort in three
// passes of 9, 8 and 8 bits: linear time, which keeps the drain (and so
// Estimate) free of n log n work and is several times faster than a
// comparison sort on the buffer sizes used here. Ignoring rho' saves a pass.
func sortByIndex(a, scratch []uint32) {
	if len(a) < 64 {
		// Counting overhead dominates for small inputs, such as the
		// buffer of a sketch of a few devices drained by Estimate.
		slices.Sort(a)
		return
	}
	var c0 [512]uint32
	var c1, c2 [256]uint32
	for _, v := range a {
		c0[v>>6&511]++
		c1[v>>15&255]++
		c2[v>>23&255]++
	}
	src, dst := a, scratch[:len(a)]
	if radixPass(dst, src, c0[:], 6, 511) {
		src, dst = dst, src
	}
	if radixPass(dst, src, c1[:], 15, 255) {
		src, dst = dst, src
	}
	if radixPass(dst, src, c2[:], 23, 255) {
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// radixPass stably scatters src into dst by the digit v>>shift&mask, whose
// histogram is counts. It reports false, doing nothing, when every entry has
// the same digit.
func radixPass(dst, src, counts []uint32, shift, mask uint32) bool {
	if counts[src[0]>>shift&mask] == uint32(len(src)) {
		return false
	}
	var sum uint32
	for d, n := range counts {
		counts[d] = sum
		sum += n
	}
	dst = dst[:len(src)]
	for _, v := range src {
		d := v >> shift & mask
		dst[counts[d]] = v
		counts[d]++
	}
	return true
}
