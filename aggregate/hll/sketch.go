// Package hll is lumen's HyperLogLog++ sketch for counting distinct devices.
//
// A Sketch estimates how many distinct device ids were added to it, in a few
// kilobytes, with a relative standard error of about 1.04/sqrt(2^p) (0.81% at
// the default precision 14); below a precision-dependent number of distinct
// devices it is a sparse list whose estimate is practically exact. Sketches
// are built by the streaming and the batch layers, stored in the database,
// merged across days and across the two layers, and re-estimated on read.
//
// It is not for exact counts (billing, deduplication, anything that must
// reconcile to the device), for intersections or differences of sets (HLL
// only supports union), or for counting anything hashed other than with
// Hash: sketches built from different hash functions merge silently into
// garbage.
//
// # Why the binary form is canonical
//
// The two layers must be able to compare and replace each other's sketches,
// and stored sketches are compared and deduplicated by their bytes, so
// MarshalBinary is a pure function of the set of inserted hashes: insertion
// order, how the inputs were partitioned into sketches and the order or tree
// of merges all give byte-identical output. That holds because every piece
// of state is a function of the set alone:
//
//   - sparse mode keeps, per 25-bit index, the maximum rho: a set function,
//     kept sorted, so its encoding (sorted deltas) is unique;
//   - the sparse→dense switch happens exactly when the number of distinct
//     sparse indexes exceeds a threshold that depends only on the precision,
//     which is a property of the set, and the insertion buffer is always
//     drained before that number is looked at or the sketch is observed;
//   - a dense register is the maximum rho over the hashes that fall into it,
//     and converting a sparse entry yields exactly the register the original
//     hash would have produced (sparse.go shows why), so a dense sketch is the
//     same whether it was filled directly or converted from any mix of sparse
//     sketches;
//   - varints are minimal, and UnmarshalBinary rejects every input that
//     would not re-marshal to itself (and every impossible state it can
//     detect), so accepted bytes are canonical too.
//
// Version 1 of the format is described in encoding.go. Changing the hash,
// the sparse precision (25), the threshold or the layout requires a new
// version; the golden files in testdata are there to catch accidental
// drift.
//
// A Sketch is not safe for concurrent use, not even by concurrent readers:
// Estimate, IsSparse and the marshalling methods drain the insertion buffer.
package hll

import (
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Precision bounds. The precision p is the number of hash bits that select a
// dense register, so a dense sketch has 2^p registers and serialises to
// 3 + 0.75*2^p bytes. The range is HLL++'s: below 4 the estimate is
// meaningless, and above 18 a sketch is 256 KiB in memory while the sparse
// precision (25) would leave sparse mode little room to pay off.
const (
	MinPrecision = 4
	MaxPrecision = 18
)

// DefaultPrecision is what lumen uses for device counts: 16384 registers,
// 12 KiB serialised when dense, about 0.81% standard error.
const DefaultPrecision = 14

// Sentinel errors. Returned errors wrap these with context; test with
// errors.Is.
var (
	// ErrPrecisionMismatch is returned by Merge when the two sketches have
	// different precisions. Lumen never merges across precisions: folding
	// a finer sketch into a coarser one is possible but would make the
	// result depend on which layer happened to be finer.
	ErrPrecisionMismatch = errors.New("hll: precision mismatch")

	// ErrCorrupt is returned by UnmarshalBinary for any input that a Sketch
	// of this format version could not have produced.
	ErrCorrupt = errors.New("hll: corrupt sketch")
)

// Sketch is a HyperLogLog++ sketch. Create one with New or MustNew; the zero
// value is also an empty sketch, of DefaultPrecision, so a Sketch can be
// embedded in an accumulator struct or be the target of UnmarshalBinary,
// which takes the precision from its input.
type Sketch struct {
	p uint8

	// maxSparse is the sparse→dense threshold for p (maxSparseEntries) and
	// flushAt the buffer length that triggers a drain. Both are cached
	// because they are needed on paths that must stay cheap; both are zero
	// until the sketch is initialised (see init).
	maxSparse int
	flushAt   int

	// Sparse mode (regs == nil): sparse holds sorted entries with distinct
	// 25-bit indexes, buf holds entries not yet merged into it, in any
	// order and possibly duplicated.
	sparse []uint32
	buf    []uint32

	// Dense mode: one register per byte, 2^p of them. A byte rather than
	// packed 6 bits because merging and adding then need no shifting; the
	// 6-bit packing is only for the serialised form.
	regs []uint8
}

// New returns an empty sketch with 2^precision registers. It returns an
// error if precision is outside [MinPrecision, MaxPrecision].
func New(precision uint8) (*Sketch, error) {
	if precision < MinPrecision || precision > MaxPrecision {
		return nil, fmt.Errorf("hll: precision %d outside [%d, %d]", precision, MinPrecision, MaxPrecision)
	}
	s := &Sketch{p: precision}
	s.init()
	return s, nil
}

// MustNew is New for precisions known to be valid, such as
// DefaultPrecision; it panics on an invalid precision.
func MustNew(precision uint8) *Sketch {
	s, err := New(precision)
	if err != nil {
		panic(err)
	}
	return s
}

// Hash is the one hash lumen uses for device ids: 64-bit xxHash (XXH64,
// seed 0). Every sketch that will ever be merged with another must have been
// fed through it, by Add or by AddHash(Hash(id)), so it is part of the
// stored format.
func Hash(deviceID []byte) uint64 { return xxhash.Sum64(deviceID) }

// init fills in the precision-derived fields, making the zero value an empty
// sketch of DefaultPrecision. It is called on the slow paths only; AddHash
// reaches it through drain, because a zero flushAt makes the first Add drain.
func (s *Sketch) init() {
	if s.maxSparse != 0 {
		return
	}
	if s.p == 0 {
		s.p = DefaultPrecision
	}
	s.maxSparse = maxSparseEntries(s.p)
	s.flushAt = bufferLimit(s.maxSparse)
}

// Add records one device id. It is AddHash(Hash(deviceID)).
func (s *Sketch) Add(deviceID []byte) { s.AddHash(Hash(deviceID)) }

// AddHash records one already hashed device id. Use it when the hash is
// computed once and fed to several sketches; the hash must come from Hash.
func (s *Sketch) AddHash(h uint64) {
	if s.regs != nil {
		addDense(s.regs, s.p, h)
		return
	}
	// Sparse adds are buffered and merged in batches, so that an Add is an
	// append and the sorting and merging cost is amortised over the batch.
	s.buf = append(s.buf, sparseEntry(h))
	if len(s.buf) >= s.flushAt {
		s.drain()
	}
}

// Merge folds o into s, so that s then estimates the union of both sets. o
// is not modified, not even its internal buffer. It returns an error wrapping
// ErrPrecisionMismatch, and leaves s unchanged, if the precisions differ. A
// nil o is an empty sketch.
func (s *Sketch) Merge(o *Sketch) error {
	if o == nil || o == s {
		return nil
	}
	s.init()
	if op := o.Precision(); op != s.p {
		return fmt.Errorf("%w: cannot merge a precision %d sketch into a precision %d sketch",
			ErrPrecisionMismatch, op, s.p)
	}
	switch {
	case o.regs != nil:
		if s.regs == nil {
			s.drain()
			if s.regs == nil {
				s.toDense()
			}
		}
		maxRegisters(s.regs, o.regs)
	case s.regs != nil:
		foldSparse(s.regs, s.p, o.sparse)
		foldSparse(s.regs, s.p, o.buf)
	default:
		// o.sparse is already sorted and deduplicated, so it is merged
		// directly; only o's unsorted buffer goes through the sort.
		s.sparse = mergeSorted(s.sparse, o.sparse)
		s.buf = append(s.buf, o.buf...)
		s.drain()
	}
	return nil
}

// Estimate returns the estimated number of distinct device ids added. It
// costs O(2^p) in dense mode and, in sparse mode, O(1) once the insertion
// buffer is drained (draining is a linear-time radix sort and merge).
func (s *Sketch) Estimate() uint64 {
	s.drain()
	if s.regs == nil {
		return sparseEstimate(len(s.sparse))
	}
	return denseEstimate(s.regs, s.p)
}

// Precision returns p: the sketch has 2^p dense registers.
func (s *Sketch) Precision() uint8 {
	if s.p == 0 {
		return DefaultPrecision
	}
	return s.p
}

// IsSparse reports whether the sketch is in sparse mode, which is the case
// exactly when it holds at most the precision's threshold of distinct sparse
// entries.
func (s *Sketch) IsSparse() bool {
	s.drain()
	return s.regs == nil
}

// Clone returns an independent deep copy of s.
func (s *Sketch) Clone() *Sketch {
	c := &Sketch{
		p:         s.p,
		maxSparse: s.maxSparse,
		flushAt:   s.flushAt,
	}
	if s.regs != nil {
		c.regs = cloneSlice(s.regs)
		return c
	}
	c.sparse = cloneSlice(s.sparse)
	c.buf = cloneSlice(s.buf)
	return c
}

// cloneSlice copies exactly, without the spare capacity slices.Clone may
// add: a cloned sketch of a long-lived accumulator should not pin memory.
func cloneSlice[T any](a []T) []T {
	if a == nil {
		return nil
	}
	c := make([]T, len(a))
	copy(c, a)
	return c
}
