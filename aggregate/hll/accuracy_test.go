package hll

import (
	"math"
	"runtime"
	"sync"
	"testing"
)

// exactAndSketch feeds n random ids (each added twice, so duplicates are
// exercised) to a sketch and to a map, and returns the map's count and the
// sketch's estimate.
func exactAndSketch(seed uint64, p uint8, n int) (exact int, estimate uint64) {
	rng := newRand(seed)
	s := MustNew(p)
	seen := make(map[[16]byte]struct{}, n)
	for _, id := range randomIDs(rng, n) {
		s.Add(id)
		s.Add(id)
		seen[[16]byte(id)] = struct{}{}
	}
	return len(seen), s.Estimate()
}

func TestSmallCardinalitiesExact(t *testing.T) {
	for _, p := range []uint8{10, 14, 18} {
		for n := 0; n <= 100; n++ {
			for seed := range uint64(5) {
				exact, est := exactAndSketch(seed<<32|uint64(n), p, n)
				if d := int64(est) - int64(exact); d < -1 || d > 1 {
					t.Errorf("p=%d n=%d seed %d: estimate %d, exact %d", p, n, seed, est, exact)
				}
			}
		}
	}
}

func TestAccuracy(t *testing.T) {
	for _, tc := range []struct {
		n      int
		maxRel float64
	}{
		// 1000 is sparse at p=14: linear counting over 2^25 buckets.
		{1000, 0.002},
		// Dense: relative standard error 0.81%; the bound is about 3.7σ
		// for a single fixed-seed trial.
		{10_000, 0.03},
		{100_000, 0.03},
		{1_000_000, 0.03},
	} {
		exact, est := exactAndSketch(uint64(tc.n), DefaultPrecision, tc.n)
		rel := (float64(est) - float64(exact)) / float64(exact)
		t.Logf("n=%d: exact %d, estimate %d, relative error %+.3f%%", tc.n, exact, est, 100*rel)
		if math.Abs(rel) > tc.maxRel {
			t.Errorf("n=%d: relative error %.4f above %.4f", tc.n, rel, tc.maxRel)
		}
	}
}

// trialErrors runs trials independent sketches of n random ids at precision
// p, in parallel, and returns each trial's relative error.
func trialErrors(p uint8, n, trials int, seed uint64) []float64 {
	errs := make([]float64, trials)
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				exact, est := exactAndSketch(seed+uint64(i)*7919, p, n)
				errs[i] = (float64(est) - float64(exact)) / float64(exact)
			}
		})
	}
	for i := range trials {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

func summarize(errs []float64) (rmse, bias, maxAbs float64) {
	for _, e := range errs {
		rmse += e * e
		bias += e
		maxAbs = max(maxAbs, math.Abs(e))
	}
	n := float64(len(errs))
	return math.Sqrt(rmse / n), bias / n, maxAbs
}

// TestRMSE is the accuracy experiment: 200 independent trials at n = 10k and
// 100k, p=14. Theory gives 1.04/sqrt(2^14) = 0.81%.
func TestRMSE(t *testing.T) {
	if testing.Short() {
		t.Skip("40M adds")
	}
	for _, n := range []int{10_000, 100_000} {
		rmse, bias, maxAbs := summarize(trialErrors(DefaultPrecision, n, 200, uint64(n)<<20))
		t.Logf("n=%d, 200 trials: RMSE %.3f%%, bias %+.3f%%, max |error| %.3f%%", n, 100*rmse, 100*bias, 100*maxAbs)
		if rmse > 0.012 {
			t.Errorf("n=%d: RMSE %.4f above 1.2%%", n, rmse)
		}
		// The bias of the mean of 200 trials has a standard error of
		// 0.81%/sqrt(200) = 0.06%; 0.3% would be a real bias.
		if math.Abs(bias) > 0.003 {
			t.Errorf("n=%d: mean relative error %.4f, the estimator is biased", n, bias)
		}
	}
}

// TestAccuracyAfterSwitch covers the range where plain HyperLogLog is
// weakest, just past the sparse→dense switch where most registers are still
// empty, up to a few times the register count, at two precisions. Bounds
// are relative to the theoretical standard error 1.04/sqrt(2^p): RMSE below
// 1.5 times it, and a mean error over 100 trials below half of it (five
// standard errors of that mean).
func TestAccuracyAfterSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	for _, p := range []uint8{10, DefaultPrecision} {
		m := 1 << p
		rse := 1.04 / math.Sqrt(float64(m))
		limit := maxSparseEntries(p)
		for _, n := range []int{limit + 1, limit + 10, limit + 200, m / 2, m, 2 * m, 4 * m} {
			rmse, bias, maxAbs := summarize(trialErrors(p, n, 100, uint64(p)<<40|uint64(n)<<20))
			t.Logf("p=%d n=%d, 100 trials: RMSE %.3f%%, bias %+.3f%%, max |error| %.3f%%", p, n, 100*rmse, 100*bias, 100*maxAbs)
			if rmse > 1.5*rse || math.Abs(bias) > rse/2 {
				t.Errorf("p=%d n=%d: RMSE %.4f, bias %.4f (standard error %.4f)", p, n, rmse, bias, rse)
			}
		}
	}
}
