// Package s3fs is lumen's S3 filesystem for Beam: it registers the "s3"
// scheme, so --input=s3://bucket/root works wherever a Beam filesystem path
// does, on every runner. It replaces Beam's own s3 package, which lumen
// never imports, because that package cannot force path-style addressing
// and so breaks against S3-compatible stores behind a hostname.
//
// Beyond filesystem.Interface it offers what lumen's Avro reader uses:
// ranged reads (splitting big files at block boundaries), listing a prefix
// with sizes in as few requests as S3 allows (pagination, no per-object
// HEAD), listing partition "directories", and atomic creation (one PUT, or
// a multipart upload that becomes visible only when completed).
package s3fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/lumenhq/lumen/io/blob"
)

func init() {
	filesystem.Register("s3", func(ctx context.Context) filesystem.Interface { return &FS{} })
}

// FS is the s3:// filesystem. Its zero value uses the options of the last
// Configure (or the environment); it rebuilds its client when they change.
type FS struct {
	mu     sync.Mutex
	client *s3.Client
	gen    int
	fixed  *Options // set by New: ignore Configure
}

// New returns a filesystem with fixed options (tests, tools).
func New(o Options) *FS { return &FS{fixed: &o} }

// Close implements io.Closer.
func (f *FS) Close() error { return nil }

func (f *FS) s3(ctx context.Context) (*s3.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, hc, gen := current()
	if f.fixed != nil {
		o = *f.fixed
		gen = -1 - gen // still rebuild if the HTTP client changes
	}
	if f.client != nil && gen == f.gen {
		return f.client, nil
	}
	c, err := NewClient(ctx, o, hc)
	if err != nil {
		return nil, err
	}
	f.client, f.gen = c, gen
	return c, nil
}

// NewClient builds an S3 client with the standard credential chain and o's
// endpoint, region and addressing; hc, if not nil, replaces the SDK's HTTP
// client.
func NewClient(ctx context.Context, o Options, hc *http.Client) (*s3.Client, error) {
	var loads []func(*config.LoadOptions) error
	if o.Region != "" {
		loads = append(loads, config.WithRegion(o.Region))
	}
	if hc != nil {
		loads = append(loads, config.WithHTTPClient(hc))
	} else {
		// Many small GETs in parallel: keep connections warm.
		loads = append(loads, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 256
			t.MaxIdleConnsPerHost = 256
		})))
	}
	// Checksums only where S3 requires them: the SDK's newer default adds
	// checksum trailers that S3-compatible stores (moto, gofakes3, older
	// MinIO) reject.
	loads = append(loads,
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("s3fs: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		switch o.PathStyle {
		case PathStyleOn:
			so.UsePathStyle = true
		case PathStyleOff:
			so.UsePathStyle = false
		default:
			// BaseEndpoint is set here from Options, AWS_ENDPOINT_URL_S3 or
			// AWS_ENDPOINT_URL: any custom endpoint means path style.
			so.UsePathStyle = so.BaseEndpoint != nil
		}
	}), nil
}

// split parses s3://bucket/key.
func split(p string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(p, "s3://")
	if !ok {
		return "", "", fmt.Errorf("s3fs: %q is not an s3:// path", p)
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("s3fs: %q has no bucket", p)
	}
	return bucket, key, nil
}

// pathError classifies an S3 failure so callers can tell a missing or
// forbidden object (fs.ErrNotExist, fs.ErrPermission) from an outage.
func pathError(op, p string, err error) error {
	var ae smithy.APIError
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nb *types.NoSuchBucket
	switch {
	case errors.As(err, &nsk), errors.As(err, &nf), errors.As(err, &nb):
		err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	case errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchBucket"):
		err = fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
	case errors.As(err, &ae) && (ae.ErrorCode() == "AccessDenied" || ae.ErrorCode() == "Forbidden"):
		err = fmt.Errorf("%w (%v)", fs.ErrPermission, err)
	}
	return &fs.PathError{Op: "s3 " + op, Path: p, Err: err}
}

// List expands a glob: everything under the glob's literal prefix, filtered
// with path.Match.
func (f *FS) List(ctx context.Context, glob string) ([]string, error) {
	bucket, key, err := split(glob)
	if err != nil {
		return nil, err
	}
	prefix := key
	if i := strings.IndexAny(key, "*?["); i >= 0 {
		prefix = key[:i]
	}
	var out []string
	err = f.each(ctx, bucket, prefix, func(o types.Object) {
		k := aws.ToString(o.Key)
		if ok, _ := path.Match(key, k); ok || key == prefix && k == key {
			out = append(out, "s3://"+bucket+"/"+k)
		}
	})
	return out, err
}

// ListPrefix lists every object under a prefix with its size, with
// ListObjectsV2 pagination: one request per 1,000 objects, no HEADs.
func (f *FS) ListPrefix(ctx context.Context, prefix string) ([]blob.FileInfo, error) {
	bucket, key, err := split(prefix)
	if err != nil {
		return nil, err
	}
	var out []blob.FileInfo
	err = f.each(ctx, bucket, key, func(o types.Object) {
		out = append(out, blob.FileInfo{Path: "s3://" + bucket + "/" + aws.ToString(o.Key), Size: aws.ToInt64(o.Size),
			Version: strings.Trim(aws.ToString(o.ETag), `"`)})
	})
	return out, err
}

func (f *FS) each(ctx context.Context, bucket, prefix string, fn func(types.Object)) error {
	c, err := f.s3(ctx)
	if err != nil {
		return err
	}
	pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return pathError("list", "s3://"+bucket+"/"+prefix, err)
		}
		for _, o := range page.Contents {
			fn(o)
		}
	}
	return nil
}

// ListDirs lists the "directories" directly under prefix (a delimiter
// listing), e.g. the dt= partitions of a kind.
func (f *FS) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	bucket, key, err := split(prefix)
	if err != nil {
		return nil, err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key), Delimiter: aws.String("/")})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, pathError("list", prefix, err)
		}
		for _, p := range page.CommonPrefixes {
			out = append(out, "s3://"+bucket+"/"+aws.ToString(p.Prefix))
		}
	}
	return out, nil
}

// OpenRead opens an object.
func (f *FS) OpenRead(ctx context.Context, p string) (io.ReadCloser, error) {
	return f.OpenReadRange(ctx, p, 0, -1)
}

// OpenReadRange opens bytes [offset, offset+length) of an object (to the
// end if length < 0) with one ranged GET.
func (f *FS) OpenReadRange(ctx context.Context, p string, offset, length int64) (io.ReadCloser, error) {
	bucket, key, err := split(p)
	if err != nil {
		return nil, err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	switch {
	case length == 0:
		return io.NopCloser(strings.NewReader("")), nil
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		return nil, pathError("get", p, err)
	}
	return out.Body, nil
}

// Size returns an object's size.
func (f *FS) Size(ctx context.Context, p string) (int64, error) {
	h, err := f.head(ctx, p)
	if err != nil {
		return 0, err
	}
	return aws.ToInt64(h.ContentLength), nil
}

// LastModified returns an object's modification time.
func (f *FS) LastModified(ctx context.Context, p string) (time.Time, error) {
	h, err := f.head(ctx, p)
	if err != nil {
		return time.Time{}, err
	}
	return aws.ToTime(h.LastModified), nil
}

func (f *FS) head(ctx context.Context, p string) (*s3.HeadObjectOutput, error) {
	bucket, key, err := split(p)
	if err != nil {
		return nil, err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return nil, err
	}
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, pathError("head", p, err)
	}
	return h, nil
}

// Remove deletes an object.
func (f *FS) Remove(ctx context.Context, p string) error {
	bucket, key, err := split(p)
	if err != nil {
		return err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return err
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		return pathError("delete", p, err)
	}
	return nil
}

// Copy copies an object within S3.
func (f *FS) Copy(ctx context.Context, from, to string) error {
	fb, fk, err := split(from)
	if err != nil {
		return err
	}
	tb, tk, err := split(to)
	if err != nil {
		return err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return err
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(tb), Key: aws.String(tk), CopySource: aws.String(fb + "/" + fk)})
	if err != nil {
		return pathError("copy", from, err)
	}
	return nil
}

// Rename is Copy then Remove (S3 has no rename).
func (f *FS) Rename(ctx context.Context, from, to string) error {
	if err := f.Copy(ctx, from, to); err != nil {
		return err
	}
	return f.Remove(ctx, from)
}

var (
	_ filesystem.Interface          = (*FS)(nil)
	_ filesystem.Remover            = (*FS)(nil)
	_ filesystem.Copier             = (*FS)(nil)
	_ filesystem.Renamer            = (*FS)(nil)
	_ filesystem.LastModifiedGetter = (*FS)(nil)
	_ blob.RangeOpener              = (*FS)(nil)
	_ blob.PrefixLister             = (*FS)(nil)
	_ blob.AtomicCreator            = (*FS)(nil)
	_ blob.DirLister                = (*FS)(nil)
)
