// Package transforms holds lumen's Beam transforms over the aggregation
// model (aggregate): merging partial aggregates with aggregate.CombineFn
// (MergePartials), the speed layer's event-time windows (PaneDeltas) and
// running totals (Totals), rows for the stores (CountRows, UserRows,
// LateRowsOf, TooLateRows), and the binary coders of the model's types.
//
// It is not for IO, and it holds no aggregation logic of its own: every
// count and sketch comes from aggregate.
package transforms
