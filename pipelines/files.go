package pipelines

import (
	"context"
	"fmt"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/lumenhq/lumen/io/deadletter"
	"github.com/lumenhq/lumen/io/s3fs"
)

func init() {
	register.DoFn4x1[context.Context, string, func(*deadletter.Record) bool, func(int64), error](&writeDeadLettersFn{})
	register.Iter1[deadletter.Record]()
	register.Emitter1[int64]()
}

// fileSetup is embedded by every DoFn that touches files: its Setup applies
// the S3 options the pipeline was built with, so workers of any runner
// address S3 as the launcher does. Zero options leave the SDK's
// environment (AWS_ENDPOINT_URL_S3, AWS_REGION, LUMEN_S3_PATH_STYLE) in
// charge.
type fileSetup struct {
	S3 s3fs.Options
}

func (f *fileSetup) Setup() {
	if f.S3 != (s3fs.Options{}) {
		s3fs.Configure(f.S3)
	}
}

// WriteDeadLetters writes each group of dead letters to <dir>/<key>.avro.
// Keys come from deterministic work units, so a re-run with the same input
// overwrites the same files. It returns the records written per file.
//
//	keyed: PCollection<KV<string, deadletter.Record>> → PCollection<int64>
func WriteDeadLetters(s beam.Scope, dir string, s3 s3fs.Options, keyed beam.PCollection) beam.PCollection {
	s = s.Scope("pipelines.WriteDeadLetters")
	return beam.ParDo(s, &writeDeadLettersFn{fileSetup: fileSetup{S3: s3}, Dir: dir}, beam.GroupByKey(s, keyed))
}

type writeDeadLettersFn struct {
	fileSetup
	Dir string
}

func (f *writeDeadLettersFn) ProcessElement(ctx context.Context, name string, recs func(*deadletter.Record) bool, emit func(int64)) error {
	var all []deadletter.Record
	var r deadletter.Record
	for recs(&r) {
		all = append(all, r)
	}
	if err := deadletter.WriteFile(ctx, f.Dir+"/"+name+".avro", all); err != nil {
		return fmt.Errorf("pipelines: %w", err)
	}
	emit(int64(len(all)))
	return nil
}
