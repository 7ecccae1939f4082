// Package aggregate is lumen's aggregation model, shared by both layers
// (DESIGN §3, §4) and free of Beam: bucketing events by corrected event
// time, counting them per kind, app, version and bucket (Agg), sketching
// distinct devices per day with HyperLogLog++ (hll), the row types the
// stores hold, and CombineFn, the one combine both layers' graphs apply. The
// batch layer pre-aggregates with it inside its readers (Partials) and the
// speed layer inside its Kafka reader, and both merge with it; because it
// is one implementation, the same events give the same counts and
// byte-identical sketches in both layers.
//
// It is not for IO, nor for choosing windows and triggers (transforms and
// pipelines do that), and it does not import Beam, so the query side links
// none.
package aggregate
