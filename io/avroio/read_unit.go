package avroio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/deadletter"
)

// FileSplit is a byte range of one raw file. A whole file is [0, Size).
type FileSplit struct {
	Path  string
	Kind  event.Kind
	Size  int64
	Start int64
	End   int64
}

// Whole reports whether the split covers its whole file.
func (f FileSplit) Whole() bool { return f.Start == 0 && f.End >= f.Size }

// WorkUnit is a bounded batch of file splits that one worker reads in one
// go: the unit of parallelism of the batch read (DESIGN §7a).
type WorkUnit struct {
	ID     int
	Splits []FileSplit
}

// Bytes is the total size of the unit's splits.
func (u WorkUnit) Bytes() int64 {
	var n int64
	for _, s := range u.Splits {
		n += s.End - s.Start
	}
	return n
}

// Sink receives what a unit read finds.
type Sink interface {
	// Events receives the valid events of one block. The slice and each
	// event's DeviceID alias reader buffers: use them during the call only.
	Events(evs []event.Event)
	// DeadLetter receives bad records, damaged blocks and unreadable files.
	DeadLetter(r deadletter.Record)
}

// ReadStats counts what a unit read did.
type ReadStats struct {
	Files, Bytes, Blocks int64
	Records, Valid       int64 // records decoded, and those that passed validation
	DeadLetters          int64
}

// ReadUnit reads every split of u, validates each record, and reports valid
// events and dead letters to sink. Small whole files are fetched with
// bounded concurrency while earlier ones are being decoded; large files and
// splits are streamed, never buffered whole.
//
// Corrupt data never fails the read: it becomes dead letters. A filesystem
// error that persists through retries does fail it, because retrying the
// unit later can succeed and dead-lettering an outage would lose good data.
func ReadUnit(ctx context.Context, u WorkUnit, opts ReadOptions, sink Sink) (ReadStats, error) {
	opts.ensureDefaults()
	r := &unitReader{opts: opts, sink: sink, dec: event.NewDecoder()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var small, large []FileSplit
	for _, s := range u.Splits {
		if s.Whole() && s.Size <= opts.WholeFileMax {
			small = append(small, s)
		} else {
			large = append(large, s)
		}
	}

	fetched := make(chan fetchResult, opts.Concurrency)
	var wg sync.WaitGroup
	go func() {
		sem := make(chan struct{}, opts.Concurrency)
		for _, s := range small {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				data, err := fetchWhole(ctx, s, opts)
				<-sem
				select {
				case fetched <- fetchResult{split: s, data: data, err: err}:
				case <-ctx.Done():
				}
			}()
		}
		wg.Wait()
		close(fetched)
	}()

	for f := range fetched {
		if f.err != nil {
			if unreadable(f.err) {
				r.fileDead(f.split, ReasonUnreadable, f.err.Error())
				continue
			}
			return r.stats, f.err
		}
		r.stats.Files++
		r.stats.Bytes += int64(len(f.data))
		sc := newBytesScanner(f.data, f.split.Path)
		if err := r.scan(sc, f.split); err != nil {
			return r.stats, err
		}
		bufPool.Put(f.data[:0])
	}
	if err := ctx.Err(); err != nil {
		return r.stats, err
	}
	for _, s := range large {
		if err := r.readStreamed(ctx, s); err != nil {
			return r.stats, err
		}
	}
	return r.stats, nil
}

type fetchResult struct {
	split FileSplit
	data  []byte
	err   error
}

var bufPool = sync.Pool{New: func() any { return []byte(nil) }}

// fetchWhole reads a whole small file, retrying transient failures.
func fetchWhole(ctx context.Context, s FileSplit, opts ReadOptions) ([]byte, error) {
	var lastErr error
	for attempt := 0; attempt <= opts.Retries; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, opts.RetryBackoff<<(2*(attempt-1))); err != nil {
				return nil, err
			}
		}
		data, err := readAll(ctx, s.Path, s.Size)
		if err == nil {
			return data, nil
		}
		lastErr = err
		if unreadable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func readAll(ctx context.Context, path string, size int64) ([]byte, error) {
	if isLocal(path) {
		return readLocalFile(path, size, bufPool.Get().([]byte))
	}
	rc, err := OpenRange(ctx, path, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bufPool.Get().([]byte)
	if int64(cap(buf)) < size+1 {
		buf = make([]byte, 0, size+1)
	}
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("avroio: read %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// unreadable reports errors that retrying cannot fix: the file is gone or
// forbidden. They make an "unreadable_file" dead letter.
func unreadable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type unitReader struct {
	opts   ReadOptions
	sink   Sink
	dec    *event.Decoder
	evs    []event.Event
	bounds []int
	valid  []event.Event
	stats  ReadStats
}

func (r *unitReader) readStreamed(ctx context.Context, s FileSplit) error {
	rc, err := OpenRange(ctx, s.Path, 0, -1)
	if err != nil {
		if unreadable(err) {
			r.fileDead(s, ReasonUnreadable, err.Error())
			return nil
		}
		return err
	}
	defer rc.Close()
	r.stats.Files++
	sc := newScanner(rc, s.Path, 0, s.Size)
	if s.Whole() {
		return r.scan(sc, s)
	}
	// A split: read the header from the start of the file, then move to the
	// first block that starts inside the split.
	h, err := sc.readHeader()
	if err != nil {
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			if s.Start == 0 { // only the first split reports a bad header
				r.fileDead(s, ce.Reason, ce.Detail)
			}
			return nil
		}
		return err
	}
	if s.Start > h.Len+int64(r.opts.SeekThreshold) {
		rc2, err := OpenRange(ctx, s.Path, s.Start-syncLen, -1)
		if err != nil {
			return err
		}
		defer rc2.Close()
		sc2 := newScanner(rc2, s.Path, s.Start-syncLen, s.Size)
		sc2.hdr = h
		sc = sc2
	}
	if err := sc.seekSplit(s.Start); err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	sc.stopAt = s.End
	return r.blocks(sc, s)
}

// scan reads a whole file from its start.
func (r *unitReader) scan(sc *scanner, s FileSplit) error {
	if _, err := sc.readHeader(); err != nil {
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			r.fileDead(s, ce.Reason, ce.Detail)
			return nil
		}
		return err
	}
	return r.blocks(sc, s)
}

func (r *unitReader) blocks(sc *scanner, s FileSplit) error {
	defer sc.close()
	rd, err := resolveWriter(s.Kind, sc.hdr.Schema, r.dec)
	if err != nil {
		ce := err.(*CorruptError)
		r.fileDead(s, ce.Reason, ce.Detail)
		return nil
	}
	for {
		b, ce, err := sc.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if ce != nil {
			r.dead(deadletter.Record{Source: s.Path, Offset: ce.Offset, Index: -1,
				Reason: string(ce.Reason), Detail: ce.Detail})
			continue
		}
		r.stats.Blocks++
		r.evs, r.bounds, err = rd.decodeBlock(b, r.evs[:0], r.bounds[:0])
		if err != nil {
			r.dead(deadletter.Record{Source: s.Path, Offset: b.Offset, Index: -1, Lost: b.Count,
				Reason: string(ReasonBadRecord), Detail: fmt.Sprintf("block of %d records: %v", b.Count, err)})
			continue
		}
		r.stats.Records += int64(len(r.evs))
		r.valid = r.valid[:0]
		for i := range r.evs {
			if reason := event.Validate(&r.evs[i]); reason != "" {
				r.dead(deadletter.Record{Source: s.Path, Offset: b.Offset, Index: int64(i), Lost: 1,
					Reason: string(reason), Detail: r.evs[i].String(),
					Payload: bytes.Clone(b.Data[r.bounds[i]:r.bounds[i+1]])})
				continue
			}
			r.valid = append(r.valid, r.evs[i])
		}
		r.stats.Valid += int64(len(r.valid))
		if len(r.valid) > 0 {
			r.sink.Events(r.valid)
		}
	}
}

func (r *unitReader) fileDead(s FileSplit, reason Reason, detail string) {
	r.dead(deadletter.Record{Source: s.Path, Offset: -1, Index: -1, Reason: string(reason), Detail: detail})
}

func (r *unitReader) dead(d deadletter.Record) {
	d.Pipeline = r.opts.Pipeline
	r.stats.DeadLetters++
	r.sink.DeadLetter(d)
}
