// Package e2e holds lumen's end-to-end tests: generated traffic through the
// real pipelines into a real store, checked against the generator's ground
// truth through the same query path cmd/query uses. Some build the commands
// and run them as processes, as operators do: submitted to a Beam job
// service, with their workers in worker pools and runner-started
// processes, or translated for Dataflow. Tests that need real servers
// (Cassandra, Kafka, S3, a job service) read their addresses from
// LUMEN_TEST_* variables and skip loudly without them.
package e2e
