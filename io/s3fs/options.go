package s3fs

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// PathStyle selects S3 addressing.
type PathStyle uint8

// Addressing modes. Auto uses path style (http://host/bucket/key) whenever a
// custom endpoint is set, as MinIO, moto and other S3-compatible stores
// need, and virtual-hosted style (http://bucket.host/key) on AWS itself.
const (
	PathStyleAuto PathStyle = iota
	PathStyleOn
	PathStyleOff
)

// ParsePathStyle parses "auto", "true"/"on" or "false"/"off".
func ParsePathStyle(s string) (PathStyle, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return PathStyleAuto, nil
	case "true", "on", "1":
		return PathStyleOn, nil
	case "false", "off", "0":
		return PathStyleOff, nil
	}
	return 0, fmt.Errorf("s3fs: path style %q (want auto, true or false)", s)
}

// Options configure S3 access. Credentials always come from the AWS SDK's
// standard chain (environment, shared files, web identity, instance
// roles), never from here, so they never travel in a pipeline's options.
type Options struct {
	// Endpoint overrides the S3 endpoint; empty means AWS_ENDPOINT_URL_S3,
	// then AWS_ENDPOINT_URL, then AWS's own.
	Endpoint string
	// Region; empty means the SDK's chain (AWS_REGION, profile), then
	// us-east-1.
	Region string
	// PathStyle: see PathStyleAuto. Default from LUMEN_S3_PATH_STYLE.
	PathStyle PathStyle
}

// EnvPathStyle forces the addressing mode where no Options are configured
// (e.g. on remote workers): auto, true or false.
const EnvPathStyle = "LUMEN_S3_PATH_STYLE"

var (
	optsMu     sync.Mutex
	opts       Options
	httpClient *http.Client
	optsGen    int // bumped by Configure; filesystems rebuild their client
)

// SetHTTPClient replaces the SDK's HTTP client in this process (tests count
// requests with it); nil restores the default.
func SetHTTPClient(c *http.Client) {
	optsMu.Lock()
	defer optsMu.Unlock()
	httpClient = c
	optsGen++
}

// Configure sets the process's S3 options, used by every s3:// path that
// goes through Beam's filesystem registry. Pipelines call it from their
// DoFns' Setup with the options they were built with, so every runner's
// workers see the same settings as the launcher.
func Configure(o Options) {
	optsMu.Lock()
	defer optsMu.Unlock()
	if o == opts {
		return // keep the clients built for these options
	}
	opts = o
	optsGen++
}

func current() (Options, *http.Client, int) {
	optsMu.Lock()
	defer optsMu.Unlock()
	o := opts
	if o.PathStyle == PathStyleAuto {
		if ps, err := ParsePathStyle(os.Getenv(EnvPathStyle)); err == nil {
			o.PathStyle = ps
		}
	}
	return o, httpClient, optsGen
}
