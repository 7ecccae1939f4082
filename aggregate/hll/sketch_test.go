package hll

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// newRand returns a deterministic generator; every random test input comes
// from one, so failures reproduce.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6c756d656e)) }

// randomIDs returns n random 16-byte device ids.
func randomIDs(rng *rand.Rand, n int) [][]byte {
	ids := make([][]byte, n)
	buf := make([]byte, 16*n)
	for i := range ids {
		id := buf[16*i : 16*i+16 : 16*i+16]
		for j := 0; j < 16; j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				id[j+k] = byte(v >> (8 * k))
			}
		}
		ids[i] = id
	}
	return ids
}

func randomHashes(rng *rand.Rand, n int) []uint64 {
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = rng.Uint64()
	}
	return hs
}

func marshal(t testing.TB, s *Sketch) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

func sketchOf(t testing.TB, p uint8, hashes []uint64) *Sketch {
	t.Helper()
	s := MustNew(p)
	for _, h := range hashes {
		s.AddHash(h)
	}
	return s
}

// distinctSparseIndexes is the number of distinct 25-bit indexes among
// hashes, computed independently of the sketch: exactly the count that
// decides the mode.
func distinctSparseIndexes(hashes []uint64) int {
	seen := make(map[uint64]struct{}, len(hashes))
	for _, h := range hashes {
		seen[h>>39] = struct{}{}
	}
	return len(seen)
}

// refDense is the textbook register of h at precision p, bit by bit, as an
// oracle for the bit tricks.
func refDense(h uint64, p uint8) (idx uint64, rho uint8) {
	idx = h >> (64 - p)
	rho = 1
	for i := 63 - int(p); i >= 0 && h>>uint(i)&1 == 0; i-- {
		rho++
	}
	return idx, rho
}

// edgeHashes are hashes that hit the boundary cases of rho and of the
// sparse→dense conversion at every precision: all-zero tails, zero low index
// bits, single set bits everywhere.
func edgeHashes(rng *rand.Rand) []uint64 {
	hs := []uint64{0, 1, ^uint64(0), 1 << 63, 1 << 39, 1<<39 - 1, 1 << 38}
	for b := range 64 {
		hs = append(hs, 1<<b, rng.Uint64()>>b, rng.Uint64()<<b)
	}
	for p := MinPrecision; p <= MaxPrecision; p++ {
		// Zero the 25-p index bits below the register index, so the
		// conversion must continue into rho'.
		lowIdx := (uint64(1)<<(sparsePrecision-p) - 1) << 39
		for range 200 {
			h := rng.Uint64() &^ lowIdx
			hs = append(hs, h, h>>uint(rng.IntN(39))&^lowIdx|h&^(1<<39-1), h&^(1<<39-1))
		}
	}
	return hs
}

func TestRegisterBitTricksMatchReference(t *testing.T) {
	rng := newRand(1)
	hs := append(edgeHashes(rng), randomHashes(rng, 200_000)...)
	for p := uint8(MinPrecision); p <= MaxPrecision; p++ {
		regs := make([]uint8, 1<<p)
		for _, h := range hs {
			wantIdx, wantRho := refDense(h, p)

			regs[wantIdx] = 0
			addDense(regs, p, h)
			if regs[wantIdx] != wantRho {
				t.Fatalf("p=%d h=%#016x: addDense set register %d to %d, want %d", p, h, wantIdx, regs[wantIdx], wantRho)
			}

			e := sparseEntry(h)
			if got, want := e>>sparseRhoBits, uint32(h>>39); got != want {
				t.Fatalf("h=%#016x: sparse index %d, want %d", h, got, want)
			}
			_, wantSparseRho := refDense(h, sparsePrecision)
			if got := uint8(e & sparseRhoMask); got != wantSparseRho {
				t.Fatalf("h=%#016x: sparse rho %d, want %d", h, got, wantSparseRho)
			}

			idx, rho := denseFromSparse(e, p)
			if uint64(idx) != wantIdx || rho != wantRho {
				t.Fatalf("p=%d h=%#016x: denseFromSparse = (%d, %d), direct = (%d, %d)", p, h, idx, rho, wantIdx, wantRho)
			}
			if rho > maxDenseRho(p) || rho > 63 {
				t.Fatalf("p=%d h=%#016x: rho %d does not fit", p, h, rho)
			}
		}
	}
}

// TestConvertedEqualsDirectDense checks the whole-sketch consequence: a
// sketch that went sparse→dense has the same registers as one that was dense
// from the first hash.
func TestConvertedEqualsDirectDense(t *testing.T) {
	rng := newRand(2)
	for _, p := range []uint8{4, 9, 14, 18} {
		hs := append(edgeHashes(rng), randomHashes(rng, 3*maxSparseEntries(p))...)
		direct := MustNew(p)
		direct.toDense()
		for _, h := range hs {
			direct.AddHash(h)
		}
		converted := sketchOf(t, p, hs)
		if converted.IsSparse() {
			t.Fatalf("p=%d: still sparse after %d hashes", p, len(hs))
		}
		if !bytes.Equal(converted.regs, direct.regs) {
			t.Fatalf("p=%d: converted registers differ from direct ones", p)
		}
	}
}

func TestMaxSparseEntries(t *testing.T) {
	// Pinned: the threshold is part of the format.
	want := map[uint8]int{4: 2, 10: 190, 12: 767, 14: 3761, 16: 16081, 18: 65362}
	for p, n := range want {
		if got := maxSparseEntries(p); got != n {
			t.Errorf("maxSparseEntries(%d) = %d, want %d", p, got, n)
		}
	}
	for p := uint8(MinPrecision); p <= MaxPrecision; p++ {
		n := maxSparseEntries(p)
		if n < 1 {
			t.Errorf("p=%d: threshold %d", p, n)
		}
		budget := denseDataLen(p)
		if worstSparseDataLen(n) > budget || worstSparseDataLen(n+1) <= budget {
			t.Errorf("p=%d: threshold %d is not the largest that fits %d bytes", p, n, budget)
		}
	}
}

// TestSparseNeverLargerThanDense builds, for every precision, a sparse
// sketch at the threshold whose deltas are all as long as they can be on
// average, and checks it encodes no larger than the dense form and within
// the computed worst case.
func TestSparseNeverLargerThanDense(t *testing.T) {
	for p := uint8(MinPrecision); p <= MaxPrecision; p++ {
		n := maxSparseEntries(p)
		// Spread n entries evenly over the whole value range with the
		// largest rho': the deltas are as long as they can be on average.
		s := MustNew(p)
		step := uint64(maxSparseValue) / uint64(n)
		for i := range n {
			v := uint64(i+1) * step
			s.sparse = append(s.sparse, uint32(v&^sparseRhoMask|maxSparseRho))
		}
		if !s.IsSparse() {
			t.Fatalf("p=%d: %d entries turned dense", p, n)
		}
		sparseLen := len(marshal(t, s))
		s.toDense()
		denseLen := len(marshal(t, s))
		if sparseLen > denseLen {
			t.Errorf("p=%d: sparse form %d bytes > dense form %d bytes", p, sparseLen, denseLen)
		}
		if bound := headerLen + worstSparseDataLen(n); sparseLen > bound {
			t.Errorf("p=%d: sparse form %d bytes above the computed worst case %d", p, sparseLen, bound)
		}
	}
}

func TestModeSwitchesExactlyAboveThreshold(t *testing.T) {
	rng := newRand(3)
	for _, p := range []uint8{4, 10, 14} {
		limit := maxSparseEntries(p)
		// Hashes with distinct 25-bit indexes, so entries = hashes.
		idxs := rng.Perm(1 << 20)[:limit+1]
		s := MustNew(p)
		for i, ix := range idxs {
			s.AddHash(uint64(ix)<<39 | rng.Uint64()>>25)
			if got, want := s.IsSparse(), i+1 <= limit; got != want {
				t.Fatalf("p=%d: after %d distinct entries IsSparse = %v, want %v", p, i+1, got, want)
			}
			// Re-adding the same index must not count twice.
			s.AddHash(uint64(ix)<<39 | 1)
		}
	}
}

// TestCanonicalBytes is the property the database relies on: any partition of
// a set into sketches, in any insertion order, merged in any order or tree,
// with sketches passing through their binary form on the way, marshals to
// the same bytes as one sketch fed the whole set. Set sizes straddle the
// sparse→dense threshold so merges of sparse sketches into a dense result,
// and mixed-mode merges, are exercised.
func TestCanonicalBytes(t *testing.T) {
	rng := newRand(4)
	var sparseToDense, mixed int
	for _, p := range []uint8{4, 10, 14} {
		limit := maxSparseEntries(p)
		sizes := []int{0, 1, 2, 3, 50, limit - 2, limit, limit + 1, limit + 3, 2 * limit, 5 * limit}
		for _, n := range sizes {
			for trial := range 12 {
				hs := randomHashes(rng, max(n, 0))
				if n > 0 && trial%3 == 0 {
					// A few hashes sharing a sparse index with different
					// rho', so max-rho dedupe is tested too.
					h := hs[0] &^ (1<<39 - 1)
					hs = append(hs, h|1<<rng.IntN(39), h|1<<rng.IntN(39), h)
				}
				want := marshal(t, sketchOf(t, p, hs))
				wantSparse := distinctSparseIndexes(hs) <= limit
				if got := want[2] == modeSparse; got != wantSparse {
					t.Fatalf("p=%d n=%d: sparse=%v, want %v", p, len(hs), got, wantSparse)
				}

				k := 1 + rng.IntN(8)
				parts := make([][]uint64, k)
				for _, h := range hs {
					i := rng.IntN(k)
					parts[i] = append(parts[i], h)
					if rng.IntN(5) == 0 { // overlap: also in another part
						j := rng.IntN(k)
						parts[j] = append(parts[j], h)
					}
				}
				pool := make([]*Sketch, k)
				for i, part := range parts {
					rng.Shuffle(len(part), func(a, b int) { part[a], part[b] = part[b], part[a] })
					pool[i] = sketchOf(t, p, part)
					if rng.IntN(3) == 0 { // stored and read back
						var r Sketch
						if err := r.UnmarshalBinary(marshal(t, pool[i])); err != nil {
							t.Fatal(err)
						}
						pool[i] = &r
					}
				}
				for len(pool) > 1 {
					i, j := rng.IntN(len(pool)), rng.IntN(len(pool)-1)
					if j >= i {
						j++
					}
					a, b := pool[i], pool[j]
					aSparse, bSparse := a.IsSparse(), b.IsSparse()
					if err := a.Merge(b); err != nil {
						t.Fatal(err)
					}
					if aSparse != bSparse {
						mixed++
					} else if aSparse && !a.IsSparse() {
						sparseToDense++
					}
					pool = slices.Delete(pool, j, j+1)
				}
				if got := marshal(t, pool[0]); !bytes.Equal(got, want) {
					t.Fatalf("p=%d n=%d k=%d trial %d: merged bytes differ from single sketch\n got %x\nwant %x",
						p, len(hs), k, trial, head(got), head(want))
				}
			}
		}
	}
	if sparseToDense == 0 || mixed == 0 {
		t.Errorf("transition not exercised: %d sparse+sparse→dense merges, %d mixed-mode merges", sparseToDense, mixed)
	}
	t.Logf("%d sparse+sparse→dense merges, %d mixed-mode merges", sparseToDense, mixed)
}

func head(b []byte) []byte { return b[:min(len(b), 48)] }

func TestMergeModes(t *testing.T) {
	rng := newRand(5)
	const p = 12
	limit := maxSparseEntries(p)
	small := randomHashes(rng, limit/3)
	big := randomHashes(rng, 4*limit)
	cases := []struct {
		name string
		a, b []uint64
	}{
		{"sparse+sparse", small, small[:limit/5]},
		{"sparse+sparse over threshold", small, randomHashes(rng, limit)},
		{"dense+sparse", big, small},
		{"sparse+dense", small, big},
		{"dense+dense", big, randomHashes(rng, 3*limit)},
		{"empty+dense", nil, big},
		{"dense+empty", big, nil},
		{"empty+empty", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := sketchOf(t, p, tc.a), sketchOf(t, p, tc.b)
			bBefore := slices.Clone(b.buf)
			if err := a.Merge(b); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.buf, bBefore) {
				t.Error("Merge drained or changed its argument's buffer")
			}
			want := sketchOf(t, p, append(slices.Clone(tc.a), tc.b...))
			if !bytes.Equal(marshal(t, a), marshal(t, want)) {
				t.Error("merged sketch differs from the sketch of the union")
			}
			if a.Estimate() != want.Estimate() {
				t.Errorf("estimate %d, want %d", a.Estimate(), want.Estimate())
			}
		})
	}
}

func TestMergeSelfAndNil(t *testing.T) {
	s := sketchOf(t, 14, randomHashes(newRand(6), 1000))
	want := marshal(t, s)
	if err := s.Merge(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Merge(s.Clone()); err != nil {
		t.Fatal(err)
	}
	if got := marshal(t, s); !bytes.Equal(got, want) {
		t.Error("merging a sketch with itself, nil or its clone changed it")
	}
}

func TestPrecisionMismatch(t *testing.T) {
	a := sketchOf(t, 14, randomHashes(newRand(7), 10))
	b := sketchOf(t, 12, randomHashes(newRand(8), 10))
	before := marshal(t, a)
	err := a.Merge(b)
	if !errors.Is(err, ErrPrecisionMismatch) {
		t.Fatalf("Merge across precisions: err = %v, want ErrPrecisionMismatch", err)
	}
	if !strings.HasPrefix(err.Error(), "hll: ") || !strings.Contains(err.Error(), "12") || !strings.Contains(err.Error(), "14") {
		t.Errorf("error %q lacks context", err)
	}
	if !bytes.Equal(marshal(t, a), before) {
		t.Error("failed Merge modified the receiver")
	}
	// The zero value is DefaultPrecision, so it refuses other precisions too.
	var z Sketch
	if err := z.Merge(b); !errors.Is(err, ErrPrecisionMismatch) {
		t.Errorf("zero Sketch merging p=12: err = %v", err)
	}
}

func TestNewPrecisionBounds(t *testing.T) {
	for _, p := range []uint8{0, 1, MinPrecision - 1, MaxPrecision + 1, 25, 255} {
		if s, err := New(p); err == nil || s != nil {
			t.Errorf("New(%d) = %v, %v; want an error", p, s, err)
		} else if !strings.HasPrefix(err.Error(), "hll: ") {
			t.Errorf("New(%d) error %q", p, err)
		}
	}
	for p := uint8(MinPrecision); p <= MaxPrecision; p++ {
		s, err := New(p)
		if err != nil || s.Precision() != p || !s.IsSparse() || s.Estimate() != 0 {
			t.Errorf("New(%d) = %v, %v", p, s, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustNew(3) did not panic")
		}
	}()
	MustNew(3)
}

func TestZeroValueIsDefaultPrecision(t *testing.T) {
	hs := randomHashes(newRand(9), 2*maxSparseEntries(DefaultPrecision))
	for _, n := range []int{0, 1, 300, len(hs)} {
		var z Sketch
		if z.Precision() != DefaultPrecision {
			t.Fatalf("zero Sketch precision %d", z.Precision())
		}
		for _, h := range hs[:n] {
			z.AddHash(h)
		}
		if !bytes.Equal(marshal(t, &z), marshal(t, sketchOf(t, DefaultPrecision, hs[:n]))) {
			t.Errorf("n=%d: zero Sketch differs from New(DefaultPrecision)", n)
		}
	}
	var a, b Sketch
	if err := a.Merge(&b); err != nil || a.Estimate() != 0 {
		t.Errorf("merging zero sketches: %v, estimate %d", err, a.Estimate())
	}
	if c := new(Sketch).Clone(); c.Estimate() != 0 || c.Precision() != DefaultPrecision {
		t.Error("clone of zero Sketch is not empty")
	}
}

func TestCloneIsIndependent(t *testing.T) {
	rng := newRand(10)
	const p = 14
	for _, n := range []int{0, 5, 1000, 3 * maxSparseEntries(p)} {
		s := MustNew(p)
		for _, h := range randomHashes(rng, n) {
			s.AddHash(h) // leaves a non-empty buffer for small n
		}
		pending := len(s.buf)
		c := s.Clone()
		if len(c.buf) != pending {
			t.Fatalf("n=%d: clone has %d pending entries, want %d", n, len(c.buf), pending)
		}
		sBytes, cBytes := marshal(t, s), marshal(t, c)
		if !bytes.Equal(sBytes, cBytes) {
			t.Fatalf("n=%d: clone differs", n)
		}
		extra := randomHashes(rng, 5000)
		for _, h := range extra {
			c.AddHash(h)
		}
		if !bytes.Equal(marshal(t, s), sBytes) {
			t.Errorf("n=%d: adding to the clone changed the original", n)
		}
		c2 := s.Clone()
		for _, h := range extra {
			s.AddHash(h)
		}
		if !bytes.Equal(marshal(t, c2), sBytes) {
			t.Errorf("n=%d: adding to the original changed the clone", n)
		}
		if !bytes.Equal(marshal(t, s), marshal(t, c)) {
			t.Errorf("n=%d: same adds to original and clone gave different sketches", n)
		}
	}
}

func TestSparseDedupeKeepsMaxRho(t *testing.T) {
	s := MustNew(14)
	base := uint64(12345) << 39
	for _, tail := range []uint64{1 << 38, 1 << 20, 1 << 30, 1, 1 << 20} {
		s.AddHash(base | tail)
	}
	s.drain()
	if len(s.sparse) != 1 {
		t.Fatalf("%d entries, want 1", len(s.sparse))
	}
	if got, want := s.sparse[0]&sparseRhoMask, uint32(bits.LeadingZeros64(1<<25)+1); got != want {
		t.Errorf("rho' %d, want %d (of the hash with tail 1)", got, want)
	}
}

func TestMergeSortAndDedupe(t *testing.T) {
	rng := newRand(11)
	for range 500 {
		a := randomEntries(rng, rng.IntN(300), 1<<rng.IntN(12))
		b := randomEntries(rng, rng.IntN(300), 1<<rng.IntN(12))
		want := refNormalize(append(slices.Clone(a), b...))
		a, b = refNormalize(a), refNormalize(b)
		a = slices.Grow(a, rng.IntN(200))
		if got := mergeSorted(a, b); !slices.Equal(got, want) {
			t.Fatalf("mergeSorted:\n got %v\nwant %v", got, want)
		}

		c := randomEntries(rng, rng.IntN(3000), 1<<rng.IntN(26))
		want = refNormalize(c)
		sortByIndex(c, make([]uint32, len(c)))
		if !slices.IsSortedFunc(c, func(a, b uint32) int { return int(a>>sparseRhoBits) - int(b>>sparseRhoBits) }) {
			t.Fatal("sortByIndex did not sort by index")
		}
		if got := dedupeSorted(c); !slices.Equal(got, want) {
			t.Fatalf("sortByIndex+dedupeSorted:\n got %v\nwant %v", got, want)
		}
	}
}

// randomEntries returns valid entries with indexes below idxRange, so small
// ranges produce many shared indexes.
func randomEntries(rng *rand.Rand, n, idxRange int) []uint32 {
	es := make([]uint32, n)
	for i := range es {
		es[i] = uint32(rng.IntN(idxRange))<<sparseRhoBits | uint32(1+rng.IntN(maxSparseRho))
	}
	return es
}

// refNormalize is the sparse list of entries by the definition: per index,
// the maximum rho', sorted.
func refNormalize(es []uint32) []uint32 {
	best := map[uint32]uint32{}
	for _, e := range es {
		best[e>>sparseRhoBits] = max(best[e>>sparseRhoBits], e)
	}
	out := make([]uint32, 0, len(best))
	for _, e := range best {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

func TestEdgePrecisions(t *testing.T) {
	rng := newRand(12)
	for _, p := range []uint8{MinPrecision, MaxPrecision} {
		t.Run(fmt.Sprintf("p=%d", p), func(t *testing.T) {
			// The all-zero hash has the largest rho; it must survive
			// conversion, packing and unpacking.
			hs := append([]uint64{0, 1 << (64 - p)}, randomHashes(rng, 2*maxSparseEntries(p)+100)...)
			s := sketchOf(t, p, hs)
			if s.IsSparse() {
				t.Fatal("still sparse")
			}
			if s.regs[0] != maxDenseRho(p) || s.regs[1] != maxDenseRho(p) {
				t.Fatalf("registers 0,1 = %d,%d, want %d", s.regs[0], s.regs[1], maxDenseRho(p))
			}
			b := marshal(t, s)
			if len(b) != headerLen+3<<p/4 {
				t.Fatalf("dense form is %d bytes", len(b))
			}
			var r Sketch
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.regs, s.regs) || r.Precision() != p {
				t.Fatal("round trip changed registers")
			}
			// Relative standard error is 1.04/sqrt(2^p): 26% at p=4,
			// 0.2% at p=18; allow 4 of them.
			n := float64(len(hs))
			rse := 1.04 / float64(int(1)<<(p/2))
			if err := (float64(s.Estimate()) - n) / n; err > 4*rse || err < -4*rse {
				t.Errorf("p=%d: relative error %.3f for n=%d", p, err, len(hs))
			}
		})
	}
}
