// Package s3flags holds the command-line flags of how lumen's commands
// reach S3 for s3:// paths, shared by cmd/batch, cmd/archive and cmd/gen.
package s3flags

import (
	"flag"
	"fmt"

	"github.com/lumenhq/lumen/io/s3fs"
)

// Flags are the parsed values.
type Flags struct {
	endpoint, region, pathStyle *string
}

// Register defines the flags on fs.
func Register(fs *flag.FlagSet) *Flags {
	return &Flags{
		endpoint:  fs.String("s3_endpoint", "", "S3 endpoint for s3:// paths (default: $AWS_ENDPOINT_URL_S3, then AWS)."),
		region:    fs.String("s3_region", "", "S3 region (default: the AWS chain, then us-east-1)."),
		pathStyle: fs.String("s3_path_style", "auto", "S3 addressing: auto (path style with a custom endpoint), true or false."),
	}
}

// Options returns the s3fs options the flags give.
func (f *Flags) Options() (s3fs.Options, error) {
	ps, err := s3fs.ParsePathStyle(*f.pathStyle)
	if err != nil {
		return s3fs.Options{}, fmt.Errorf("--s3_path_style: %w", err)
	}
	return s3fs.Options{Endpoint: *f.endpoint, Region: *f.region, PathStyle: ps}, nil
}
