package hll

import "math"

// sparseEstimate is linear counting over the m' = 2^25 sparse buckets:
// m' ln(m'/(m'-n)) for n occupied buckets, rounded. With n far below m' (at
// most 65362 of 33.5M) collisions are rare, so the estimate is within one of
// the true count for small sets and within a fraction of a percent up to the
// threshold, which is why HLL++ keeps a sparse mode at all.
func sparseEstimate(n int) uint64 {
	const m = 1 << sparsePrecision
	// Log1p keeps precision where n/m is tiny, which is the common case.
	return uint64(math.Round(-m * math.Log1p(-float64(n)/m)))
}

// denseEstimate is Otmar Ertl's improved raw estimator ("New cardinality
// estimation algorithms for HyperLogLog sketches", 2017), which Redis uses
// since 5.0. It is computed from the register histogram C[0..q+1],
// q = 64-p:
//
//	z = m·τ(1 - C[q+1]/m)
//	z = (z + C[k]) / 2          for k = q down to 1
//	z = z + m·σ(C[0]/m)
//	E = α∞·m² / z,  α∞ = 1/(2 ln 2)
//
// σ corrects for empty registers and τ for saturated ones, so unlike the
// original HyperLogLog there is no switch to linear counting and unlike
// HLL++ no empirical bias table: the estimator is nearly unbiased from a few
// hundred distinct values upwards, which covers everything after the
// sparse→dense switch. Cost: one pass over the registers plus O(q) and the
// two short series.
func denseEstimate(regs []uint8, p uint8) uint64 {
	// Four histograms break the dependency between consecutive increments
	// of the same counter (store-to-load forwarding stalls), which nearly
	// halves the pass over 2^p registers.
	var h [4][64]uint32
	i := 0
	for ; i+4 <= len(regs); i += 4 {
		r := regs[i : i+4 : i+4]
		h[0][r[0]&63]++
		h[1][r[1]&63]++
		h[2][r[2]&63]++
		h[3][r[3]&63]++
	}
	for ; i < len(regs); i++ {
		h[0][regs[i]&63]++
	}
	var c [64]float64
	for k := range c {
		c[k] = float64(h[0][k] + h[1][k] + h[2][k] + h[3][k])
	}

	m := float64(len(regs))
	q := int(64 - p)
	z := m * tau(1-c[q+1]/m)
	for k := q; k >= 1; k-- {
		z = 0.5 * (z + c[k])
	}
	z += m * sigma(c[0]/m)

	e := 0.5 / math.Ln2 * m * m / z
	switch {
	case math.IsNaN(e) || e < 0:
		return 0
	case e >= math.MaxUint64:
		// Every register saturated: only reachable from crafted bytes,
		// but a float-to-uint conversion of +Inf is undefined in Go.
		return math.MaxUint64
	}
	return uint64(math.Round(e))
}

// sigma is Ertl's σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1), summed until the
// terms no longer change the float64 result. σ(1) = ∞ makes an all-empty
// sketch estimate 0.
func sigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		prev := z
		z += x * y
		y += y
		if z == prev {
			return z
		}
	}
}

// tau is Ertl's τ(x) = (1 - x - Σ_{k≥1} (1 - x^(2^-k))² 2^-k) / 3, summed
// until the terms no longer change the float64 result.
func tau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		prev := z
		y *= 0.5
		d := 1 - x
		z -= d * d * y
		if z == prev {
			return z / 3
		}
	}
}
