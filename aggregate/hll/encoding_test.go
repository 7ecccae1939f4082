package hll

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins the version 1 format: fixed device ids must marshal to the
// committed bytes. A failure means the hash, the threshold or the layout
// changed, which breaks every stored sketch: bump the version instead. Run
// with -update only for a deliberate new format.
func TestGolden(t *testing.T) {
	cases := []struct {
		file     string
		p        uint8
		n        int
		mode     byte
		estimate uint64
	}{
		{"sparse_p14_100.hex", 14, 100, modeSparse, 100},
		{"dense_p10_5000.hex", 10, 5000, modeDense, 0},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s := MustNew(tc.p)
			for i := range tc.n {
				s.Add(fmt.Appendf(nil, "device-%d", i))
			}
			got := marshal(t, s)
			if got[2] != tc.mode {
				t.Fatalf("mode %d, want %d", got[2], tc.mode)
			}
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("format drifted from %s:\n got %x\nwant %x", path, head(got), head(want))
			}
			var r Sketch
			if err := r.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if tc.estimate != 0 && r.Estimate() != tc.estimate {
				t.Errorf("golden sketch estimates %d, want %d", r.Estimate(), tc.estimate)
			}
		})
	}
}

// TestHashIsXXH64 pins Hash to XXH64 with seed 0 using the reference
// implementation's published values, since stored sketches depend on it.
func TestHashIsXXH64(t *testing.T) {
	for in, want := range map[string]uint64{
		"":    0xef46db3751d8e999,
		"a":   0xd24ec4f1a98c6e5b,
		"abc": 0x44bc2cf5ad770999,
	} {
		if got := Hash([]byte(in)); got != want {
			t.Errorf("Hash(%q) = %#x, want %#x", in, got, want)
		}
	}
	s, t2 := MustNew(14), MustNew(14)
	s.Add([]byte("device-1"))
	t2.AddHash(Hash([]byte("device-1")))
	if !bytes.Equal(marshal(t, s), marshal(t, t2)) {
		t.Error("Add(id) differs from AddHash(Hash(id))")
	}
}

func TestRoundTrip(t *testing.T) {
	rng := newRand(20)
	for _, p := range []uint8{4, 5, 11, 14, 18} {
		for _, n := range []int{0, 1, 2, 3, 100, maxSparseEntries(p), maxSparseEntries(p) + 1, 50_000} {
			hs := randomHashes(rng, n)
			s := sketchOf(t, p, hs)
			b := marshal(t, s)
			var r Sketch
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("p=%d n=%d: %v", p, n, err)
			}
			if got := marshal(t, &r); !bytes.Equal(got, b) {
				t.Fatalf("p=%d n=%d: re-marshal differs", p, n)
			}
			if r.Precision() != p || r.IsSparse() != s.IsSparse() || r.Estimate() != s.Estimate() {
				t.Fatalf("p=%d n=%d: decoded sketch differs", p, n)
			}
			// A decoded sketch keeps working like the original.
			more := randomHashes(rng, 2000)
			for _, h := range more {
				r.AddHash(h)
				s.AddHash(h)
			}
			if !bytes.Equal(marshal(t, &r), marshal(t, s)) {
				t.Fatalf("p=%d n=%d: decoded sketch diverged after more adds", p, n)
			}
			// AppendBinary appends after existing bytes.
			prefix := []byte("prefix")
			ab, _ := s.AppendBinary(prefix)
			if !bytes.HasPrefix(ab, prefix) || !bytes.Equal(ab[len(prefix):], marshal(t, s)) {
				t.Fatalf("p=%d n=%d: AppendBinary differs from MarshalBinary", p, n)
			}
		}
	}
}

func TestUnmarshalIntoUsedSketchReplacesIt(t *testing.T) {
	small := marshal(t, sketchOf(t, 10, randomHashes(newRand(21), 20)))
	s := sketchOf(t, 14, randomHashes(newRand(22), 10_000))
	if err := s.UnmarshalBinary(small); err != nil {
		t.Fatal(err)
	}
	if s.Precision() != 10 || !bytes.Equal(marshal(t, s), small) {
		t.Error("UnmarshalBinary did not replace the sketch")
	}
	before := marshal(t, s)
	if err := s.UnmarshalBinary([]byte{1, 14, 9}); err == nil {
		t.Fatal("bad mode accepted")
	}
	if !bytes.Equal(marshal(t, s), before) {
		t.Error("failed UnmarshalBinary changed the sketch")
	}
}

func sparseBytes(p uint8, count uint64, deltas ...uint64) []byte {
	b := []byte{formatVersion, p, modeSparse}
	b = binary.AppendUvarint(b, count)
	for _, d := range deltas {
		b = binary.AppendUvarint(b, d)
	}
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	e := func(idx, rho uint64) uint64 { return idx<<sparseRhoBits | rho }
	validSparse := sparseBytes(14, 2, e(5, 3), e(1, 0)) // entries (5,3), (6,3)
	dense := marshal(t, sketchOf(t, 10, randomHashes(newRand(23), 5000)))
	limit14 := uint64(maxSparseEntries(14))

	tooMany := sparseBytes(14, limit14+1)
	for range limit14 + 1 {
		tooMany = binary.AppendUvarint(tooMany, e(1, 0))
	}
	mutate := func(b []byte, f func([]byte) []byte) []byte {
		return f(bytes.Clone(b))
	}
	emptyDense := append([]byte{formatVersion, 10, modeDense}, make([]byte, denseDataLen(10))...)
	// At p=14 a register covers 2048 sparse indexes, below the threshold
	// of 3761, so a dense sketch needs at least two registers set.
	fewDense := append([]byte{formatVersion, 14, modeDense}, make([]byte, denseDataLen(14))...)
	fewDense[headerLen] = 1
	highReg := mutate(dense, func(b []byte) []byte { b[headerLen] |= 63; return b })

	cases := []struct {
		name, reason string
		in           []byte
	}{
		{"empty", "shorter than", nil},
		{"short header", "shorter than", []byte{1, 14}},
		{"version 0", "version 0", []byte{0, 14, 0, 0}},
		{"version 2", "version 2", []byte{2, 14, 0, 0}},
		{"precision 3", "precision 3", []byte{1, 3, 0, 0}},
		{"precision 19", "precision 19", []byte{1, 19, 0, 0}},
		{"mode 2", "mode 2", []byte{1, 14, 2, 0}},
		{"no count", "count is truncated", []byte{1, 14, 0}},
		{"padded count", "count is not a minimal varint", []byte{1, 14, 0, 0x80, 0x00}},
		{"overflowing count", "overflows", append([]byte{1, 14, 0}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"count above threshold", "exceed the sparse limit", tooMany},
		{"huge count", "exceed the sparse limit", sparseBytes(14, 1<<40)},
		{"truncated entries", "truncated", validSparse[:len(validSparse)-1]},
		{"truncated varint", "entry 1 is truncated", append(sparseBytes(14, 2, e(5, 3)), 0x80)},
		{"padded entry", "entry 0 is not a minimal varint", append(sparseBytes(14, 1), 0x83, 0x00)},
		{"trailing after sparse", "trailing", append(bytes.Clone(validSparse), 0)},
		{"duplicate entry", "duplicates", sparseBytes(14, 2, e(5, 3), 0)},
		{"duplicate index", "repeats index 5", sparseBytes(14, 2, e(5, 3), 1)},
		{"rho zero", "rho 0", sparseBytes(14, 1, e(5, 0))},
		{"rho 41", "rho 41", sparseBytes(14, 1, e(5, 41))},
		{"rho 63", "rho 63", sparseBytes(14, 2, e(5, 3), e(1, 60))},
		// Deltas are unsigned, so an unsorted list can only be written
		// as a delta that would wrap; it lands out of range.
		{"unsorted (wrapping delta)", "out of range", sparseBytes(14, 2, e(5, 3), 1<<32-e(1, 0))},
		{"index out of range", "out of range", sparseBytes(14, 1, e(1<<25, 1))},
		{"huge delta", "out of range", sparseBytes(14, 1, 1<<63)},
		{"truncated dense", "truncated", dense[:len(dense)-1]},
		{"trailing after dense", "trailing", append(bytes.Clone(dense), 0)},
		{"register above max", "above the maximum 55", highReg},
		{"empty dense", "could not have left sparse mode", emptyDense},
		{"nearly empty dense", "could not have left sparse mode", fewDense},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s Sketch
			err := s.UnmarshalBinary(tc.in)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.HasPrefix(err.Error(), "hll: ") || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not give the reason %q", err, tc.reason)
			}
		})
	}

	var s Sketch
	if err := s.UnmarshalBinary(validSparse); err != nil || s.Estimate() != 2 {
		t.Errorf("valid sparse input: %v, estimate %d", err, s.Estimate())
	}
}

func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	rng := newRand(24)
	for _, n := range []int{1000, 100_000} {
		s := sketchOf(t, 14, randomHashes(rng, n))
		buf := make([]byte, 0, 1<<15)
		if a := testing.AllocsPerRun(50, func() { buf, _ = s.AppendBinary(buf[:0]) }); a != 0 {
			t.Errorf("n=%d: AppendBinary into a large enough buffer: %v allocs", n, a)
		}
		if a := testing.AllocsPerRun(50, func() { _, _ = s.MarshalBinary() }); a != 1 {
			t.Errorf("n=%d: MarshalBinary: %v allocs, want 1", n, a)
		}
		if a := testing.AllocsPerRun(50, func() { s.Estimate() }); a != 0 {
			t.Errorf("n=%d: Estimate: %v allocs", n, a)
		}
	}
	// Once the sparse list and buffers have grown, adding (here re-adding)
	// hashes drains in place.
	hs := randomHashes(rng, 2000)
	s := sketchOf(t, 14, hs)
	s.Estimate()
	i := 0
	if a := testing.AllocsPerRun(20_000, func() { s.AddHash(hs[i%len(hs)]); i++ }); a != 0 {
		t.Errorf("sparse AddHash in steady state: %v allocs", a)
	}
}

// FuzzUnmarshal: no input panics, every rejection is ErrCorrupt, and every
// accepted input is canonical (re-marshals to itself) and behaves as a
// sketch (estimates, clones, merges idempotently, accepts adds).
func FuzzUnmarshal(f *testing.F) {
	rng := newRand(25)
	for _, p := range []uint8{4, 5, 8, 10, 14, 18} {
		for _, n := range []int{0, 1, 3, 40} {
			f.Add(marshal(f, sketchOf(f, p, randomHashes(rng, n))))
		}
		// Dense seeds only where they are small: the fuzzer slows to a
		// crawl on inputs of many kilobytes.
		if p <= 10 {
			f.Add(marshal(f, sketchOf(f, p, randomHashes(rng, 3*maxSparseEntries(p)))))
		}
	}
	f.Add(sparseBytes(14, 2, 5<<6|3, 1))
	f.Add([]byte{1, 14, 0, 0x80, 0x00})
	f.Add([]byte{1, 4, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Sketch
		if err := s.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "hll: ") {
				t.Fatalf("rejection %q is not an ErrCorrupt", err)
			}
			return
		}
		out, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted input is not canonical:\n in %x\nout %x", head(in), head(out))
		}
		_ = s.Estimate()
		c := s.Clone()
		if err := c.Merge(&s); err != nil {
			t.Fatal(err)
		}
		if got := marshal(t, c); !bytes.Equal(got, in) {
			t.Fatal("merging with a clone of itself changed the sketch")
		}
		c.Add(in)
		_ = c.Estimate()
	})
}
