package s3fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// PartSize is the multipart upload part size. Objects smaller than one part
// are written with a single PUT.
const PartSize = 8 << 20

// OpenWrite is CreateAtomic: S3 writes are atomic anyway.
func (f *FS) OpenWrite(ctx context.Context, p string) (io.WriteCloser, error) {
	return f.CreateAtomic(ctx, p)
}

// CreateAtomic returns a writer whose object appears, whole, only when
// Close succeeds: a single PUT for small objects, or a multipart upload
// completed on Close (and aborted by Abort or a failed Close). Written
// here rather than with the SDK's feature/s3/manager, which its makers
// have deprecated, or its v0 successor: this is the whole of what lumen
// needs from either.
func (f *FS) CreateAtomic(ctx context.Context, p string) (io.WriteCloser, error) {
	bucket, key, err := split(p)
	if err != nil {
		return nil, err
	}
	c, err := f.s3(ctx)
	if err != nil {
		return nil, err
	}
	return &writer{ctx: ctx, c: c, path: p, bucket: bucket, key: key}, nil
}

type writer struct {
	ctx         context.Context
	c           *s3.Client
	path        string
	bucket, key string
	buf         bytes.Buffer
	uploadID    *string
	parts       []types.CompletedPart
	err         error
	done        bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("s3fs: write after close")
	}
	w.buf.Write(p)
	for w.buf.Len() >= PartSize {
		if err := w.uploadPart(w.buf.Next(PartSize)); err != nil {
			w.fail(err)
			return 0, w.err
		}
	}
	return len(p), nil
}

func (w *writer) uploadPart(data []byte) error {
	if w.uploadID == nil {
		out, err := w.c.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(w.bucket), Key: aws.String(w.key)})
		if err != nil {
			return pathError("create multipart upload", w.path, err)
		}
		w.uploadID = out.UploadId
	}
	n := int32(len(w.parts) + 1)
	out, err := w.c.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
		PartNumber: aws.Int32(n), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return pathError(fmt.Sprintf("upload part %d", n), w.path, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	return nil
}

// Close makes the object visible.
func (w *writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	if w.uploadID == nil {
		data := w.buf.Bytes()
		_, err := w.c.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		})
		if err != nil {
			w.err = pathError("put", w.path, err)
		}
		return w.err
	}
	if w.buf.Len() > 0 {
		if err := w.uploadPart(w.buf.Bytes()); err != nil {
			w.fail(err)
			return w.err
		}
	}
	_, err := w.c.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		w.fail(pathError("complete multipart upload", w.path, err))
	}
	return w.err
}

// Abort discards the upload; nothing becomes visible.
func (w *writer) Abort() {
	w.done = true
	if w.err == nil {
		w.err = errors.New("s3fs: aborted")
	}
	w.abortUpload()
}

func (w *writer) fail(err error) {
	w.err = err
	w.abortUpload()
}

func (w *writer) abortUpload() {
	if w.uploadID != nil {
		w.c.AbortMultipartUpload(context.WithoutCancel(w.ctx), &s3.AbortMultipartUploadInput{
			Bucket: aws.String(w.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
		})
		w.uploadID = nil
	}
}
