// Package e2e holds lumen's end-to-end tests: generated traffic through the
// real pipelines into a real store, checked against the generator's ground
// truth through the same query path cmd/query uses. Tests that need real
// servers (Cassandra, Kafka, S3) read their addresses from LUMEN_TEST_*
// variables and skip loudly without them.
package e2e
