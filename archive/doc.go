// Package archive is lumen's archiver: a Kafka consumer-group service that
// lands every record of the three event topics in the raw layout
// (DESIGN §2),
//
//	<root>/raw/<kind>/dt=YYYY-MM-DD/hr=HH/<topic>-p<partition>-o<first offset>.avro
//
// partitioned by the UTC hour of each event's received_time, so the batch
// layer can recompute anything from it. It is the durable record of the
// Lambda architecture: what it has committed to Kafka is in the files, once.
//
// # Why not a Beam pipeline
//
// Everything else in lumen is Beam; the archiver deliberately is not. It
// must commit a partition's offset only after the files holding that
// partition's records are durable, and Beam Go has no hook for that: a sink
// cannot tell the source that its output is safe, bundle finalization runs
// after the runner persists its own state, not the sink's files, and every
// runner differs in when (or whether) it calls it. The archiver also wants
// files that belong to one partition's consecutive offset range, so a
// restart can tell exactly which files it is about to rewrite; a Beam
// runner reshuffles and re-bundles at will. And it is a long-running
// service whose only state is the consumer group's offsets: nothing to
// checkpoint, snapshot or drain. A plain franz-go (kgo) consumer gives all
// of that in a few hundred lines.
//
// # Exactly-once files
//
// Each assigned partition has at most one open segment: a consecutive
// offset range [first, last], with one OCF writer per arrival hour it
// touched, each named from (topic, partition, first). A segment rolls when
// it reaches Config.RollRecords, RollBytes or MaxHourFiles, when it is
// RollInterval old, when its partition is revoked and on shutdown. Rolling
// closes every hour file durably (fsync and rename locally, one PUT or a
// completed multipart upload on S3), then commits last+1. A segment is
// therefore committed all or nothing, and a crash can only leave files of
// uncommitted segments, which the next owner of the partition deletes
// before it writes the same records again (see cleanLeftovers for the
// argument).
//
// The archiver is crash-only: if the output fails (a file cannot be
// written or a leftover cannot be listed or deleted), Run returns the error
// without committing the segment, and the restart that follows takes the
// same path as a restart after kill -9.
//
// Every decodable record is archived as it was produced, byte for byte,
// including records that fail validation (an empty app_id, a timestamp
// before 2000): the batch layer dead-letters those itself, with the same
// reasons the stream uses. Only what cannot be archived becomes an
// archiver dead letter, in <root>/deadletter/archive/dt=<record day>/:
// undecodable messages, a record of one kind on another kind's topic, a
// received_time whose hour has no raw directory (before year 1), and a
// record whose event_time or received_time is more than Config.MaxFuture
// ahead of the archiver's clock (future_time, DESIGN §3 time bounds): a
// stamp in 2090 is kept whole, in the dead-letter folder of the bound's
// day, and never makes a dt= folder of the future.
//
// # Seals
//
// The archiver also records which arrival hours are complete, for the
// batch (DESIGN §3, complete input): once every partition of a kind's
// topic has committed past what it held SealDelay after an hour ended, it
// writes the hour's seal, <root>/seal/<kind>/dt=YYYY-MM-DD/hr=HH (io/raw
// seals). It reads the group's committed offsets, not its own, so any
// number of members seal correctly, and idle partitions never hold a seal
// back. See seal.go for the argument.
//
// It is not for reading the archive (see io/avroio and pipelines) and it
// does not validate or aggregate anything.
package archive
