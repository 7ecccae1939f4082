package hll_test

import (
	"fmt"

	"github.com/lumenhq/lumen/aggregate/hll"
)

// Two layers count the devices of overlapping days; the stored sketches
// merge into the distinct count of the union.
func Example() {
	monday := hll.MustNew(hll.DefaultPrecision)
	for i := range 300 {
		// Repeated events from the same device count once.
		monday.Add(fmt.Appendf(nil, "device-%d", i%120))
	}
	fmt.Println("monday:", monday.Estimate())

	tuesday := hll.MustNew(hll.DefaultPrecision)
	for i := 100; i < 180; i++ {
		tuesday.Add(fmt.Appendf(nil, "device-%d", i))
	}

	// Store Tuesday's sketch and read it back, as the batch layer does.
	stored, err := tuesday.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var fromDB hll.Sketch
	if err := fromDB.UnmarshalBinary(stored); err != nil {
		panic(err)
	}

	both := monday.Clone()
	if err := both.Merge(&fromDB); err != nil {
		panic(err)
	}
	fmt.Println("monday or tuesday:", both.Estimate())
	fmt.Println("sparse:", both.IsSparse(), "bytes:", len(stored))

	// Sketches of different precisions do not merge.
	err = both.Merge(hll.MustNew(12))
	fmt.Println(err)
	// Output:
	// monday: 120
	// monday or tuesday: 180
	// sparse: true bytes: 318
	// hll: precision mismatch: cannot merge a precision 12 sketch into a precision 14 sketch
}
