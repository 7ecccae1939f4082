package hll

import "testing"

// Benchmarks report ns per Add, Merge, Estimate, Marshal or Unmarshal. Ids
// and hashes are generated outside the timed loop, and loops index them
// without a modulo by a variable, whose division would be a visible part of
// a few-ns Add.

func BenchmarkAdd(b *testing.B) {
	const p = DefaultPrecision
	ids := randomIDs(newRand(30), 1<<16)
	hs := randomHashes(newRand(31), 1<<16)
	// Sparse: the life of a sketch from empty to the threshold, drains
	// and growth included, ending with an Estimate (which drains the rest)
	// and counted per Add. The hashes are distinct, so it stays sparse.
	limit := maxSparseEntries(p)
	b.Run("sparse", func(b *testing.B) {
		s, i := MustNew(p), 0
		for b.Loop() {
			s.Add(ids[i])
			if i++; i == limit {
				s.Estimate()
				s, i = MustNew(p), 0
			}
		}
	})
	b.Run("sparse-hash", func(b *testing.B) {
		s, i := MustNew(p), 0
		for b.Loop() {
			s.AddHash(hs[i])
			if i++; i == limit {
				s.Estimate()
				s, i = MustNew(p), 0
			}
		}
	})
	// Sparse steady state: a sketch of half the threshold seeing the same
	// devices again, as a streaming window does.
	half := limit / 2
	b.Run("sparse-repeat-hash", func(b *testing.B) {
		s, i := sketchOf(b, p, hs[:half]), 0
		for b.Loop() {
			s.AddHash(hs[i])
			if i++; i == half {
				i = 0
			}
		}
	})
	b.Run("dense", func(b *testing.B) {
		s := sketchOf(b, p, hs)
		for i := 0; b.Loop(); i++ {
			s.Add(ids[i&(1<<16-1)])
		}
	})
	b.Run("dense-hash", func(b *testing.B) {
		s := sketchOf(b, p, hs)
		for i := 0; b.Loop(); i++ {
			s.AddHash(hs[i&(1<<16-1)])
		}
	})
}

func BenchmarkHash(b *testing.B) {
	id := randomIDs(newRand(32), 1)[0]
	var sink uint64
	for b.Loop() {
		sink += Hash(id)
	}
	_ = sink
}

func BenchmarkMergeDense(b *testing.B) {
	rng := newRand(33)
	dst := sketchOf(b, DefaultPrecision, randomHashes(rng, 100_000))
	src := sketchOf(b, DefaultPrecision, randomHashes(rng, 100_000))
	for b.Loop() {
		if err := dst.Merge(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMergeSparse(b *testing.B) {
	rng := newRand(34)
	n := maxSparseEntries(DefaultPrecision) / 3
	base := sketchOf(b, DefaultPrecision, randomHashes(rng, n))
	src := sketchOf(b, DefaultPrecision, randomHashes(rng, n))
	base.drain()
	src.drain()
	for b.Loop() {
		dst := base.Clone()
		if err := dst.Merge(src); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSketches(b *testing.B) map[string]*Sketch {
	rng := newRand(35)
	sparse := sketchOf(b, DefaultPrecision, randomHashes(rng, maxSparseEntries(DefaultPrecision)/2))
	dense := sketchOf(b, DefaultPrecision, randomHashes(rng, 100_000))
	sparse.drain()
	return map[string]*Sketch{"sparse": sparse, "dense": dense}
}

func BenchmarkEstimate(b *testing.B) {
	for _, name := range []string{"sparse", "dense"} {
		s := benchSketches(b)[name]
		b.Run(name, func(b *testing.B) {
			var sink uint64
			for b.Loop() {
				sink += s.Estimate()
			}
			_ = sink
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	for _, name := range []string{"sparse", "dense"} {
		s := benchSketches(b)[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"-append", func(b *testing.B) {
			buf := make([]byte, 0, 1<<15)
			for b.Loop() {
				buf, _ = s.AppendBinary(buf[:0])
			}
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, name := range []string{"sparse", "dense"} {
		data := marshal(b, benchSketches(b)[name])
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var s Sketch
			for b.Loop() {
				if err := s.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
