package rollup

// Semantics is the version of what a rollup's aggregates mean: how the
// raw files' bytes become partial aggregates. That is the decoding and
// schema resolution of the files (io/avroio, event), validation and the
// time bound (event), bucketing, the combine and the encoding of the
// aggregates and their sketches (aggregate, aggregate/hll), and the read
// path that applies them (io/raw/read.go). It is part of a rollup's name
// and of its content, so a rollup of another version is never reused: its
// partition is read from raw and rolled up again (DESIGN §3, what may be
// reused).
//
// Bump it with every change to that code that can change what it
// computes. TestSemanticsDigest fails until you do: it keeps the digest of
// that code, comments and formatting aside, in semanticsDigest.
const Semantics = 4

// semanticsDigest is the digest of the code Semantics versions, as
// TestSemanticsDigest computes it. Change it together with Semantics; alone
// only for a change that computes exactly what the code before it did (a
// rename, code moved into a function), and say so in the commit, since
// every rollup of the old digest is then trusted as the new code's.
const semanticsDigest = "4b583b02bf9a56f20c0e096452255ecb"
