package raw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/avroio"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/deadletter"
)

// FileSplit is a byte range of one raw file. A whole file is [0, Size).
type FileSplit struct {
	Path  string
	Kind  event.Kind
	Size  int64
	Start int64
	End   int64
	// Version is the listing's version of the file (blob.FileInfo).
	Version string
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
	Records, Valid       int64 // records decoded, and those that passed validation and the time bound
	DeadLetters          int64
	// ReadFailures counts the files that could not be read at all because
	// of the filesystem (gone since the listing, or forbidden), not their
	// content: they are "unreadable_file" dead letters, and reading again
	// may succeed, so what was read is not what the listing holds.
	ReadFailures int64
	// Latest is the latest received time (ms; the one time the bound looks
	// at) of a valid event, and FutureFrom the earliest such time of a
	// future_time dead letter; 0 if there is none. They bound the clocks
	// at which reading again would give the same events (rollup.TimeBounds).
	Latest, FutureFrom int64
}

// ReadUnit reads every split of u, validates each record and bounds its
// times (event.CheckFuture at opts.NowMs), and reports valid events and
// dead letters to sink. Small whole files are fetched with
// bounded concurrency while earlier ones are being decoded; large files and
// splits are streamed, never buffered whole.
//
// Corrupt data never fails the read: it becomes dead letters, the same on
// every read. A file that is gone or forbidden is an "unreadable_file" dead
// letter, counted in ReadStats.ReadFailures: it is not the file's content,
// so the caller must not keep the result as the partition's (no rollup).
// Any other filesystem error that persists through retries (an I/O error,
// a timeout) fails the read, because retrying the unit later can succeed
// and dead-lettering an outage would lose good data.
func ReadUnit(ctx context.Context, u WorkUnit, opts ReadOptions, sink Sink) (ReadStats, error) {
	opts.ensureDefaults()
	r := &unitReader{opts: opts, sink: sink, rd: avroio.NewReader(), limit: opts.NowMs + opts.MaxFuture.Milliseconds()}
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
				r.fileDead(f.split, avroio.ReasonUnreadable, f.err.Error())
				continue
			}
			return r.stats, f.err
		}
		r.stats.Files++
		r.stats.Bytes += int64(len(f.data))
		if f.data == nil {
			f.data = []byte{} // fetched, and empty
		}
		if err := r.read(ctx, f.split, f.data); err != nil {
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
	return blob.ReadAll(ctx, path, size, bufPool.Get().([]byte))
}

// unreadable reports errors that retrying within the unit cannot fix: the
// file is gone or forbidden. They make an "unreadable_file" dead letter. A
// later run may well read the file (an access policy fixed, an object
// restored), so they are read failures (ReadStats.ReadFailures), never
// the file's content.
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

// unitReader reads one unit's files and turns what avroio finds into
// events and dead letters.
type unitReader struct {
	opts  ReadOptions
	sink  Sink
	rd    *avroio.Reader
	stats ReadStats
	limit int64         // NowMs + MaxFuture: later times are future_time
	path  string        // the split being read, for future_time dead letters
	kept  []event.Event // a block's events within the bound, when some are not
}

// read reads one split, from data if it was fetched whole (non-nil, even
// if empty), else streamed.
func (r *unitReader) read(ctx context.Context, s FileSplit, data []byte) error {
	src := avroio.Source{Path: s.Path, Kind: s.Kind, Size: s.Size, Start: s.Start, End: s.End, Data: data,
		SeekThreshold: r.opts.SeekThreshold}
	if data == nil { // not fetched whole: stream it
		src.Open = func(offset int64) (io.ReadCloser, error) { return blob.OpenRange(ctx, s.Path, offset, -1) }
	}
	r.path = s.Path
	st, err := r.rd.Read(src, r.events, func(d avroio.Damage) {
		r.dead(deadletter.Record{Source: s.Path, Offset: d.Offset, Index: d.Index, Lost: d.Lost,
			Reason: d.Reason, Detail: d.Detail, Payload: d.Payload})
	})
	r.stats.Blocks += st.Blocks
	r.stats.Records += st.Records
	r.stats.Valid += st.Valid // less the future_time ones, taken off in events
	return err
}

// events applies the time bound (event.CheckFuture) to a block's valid
// events and hands those within it to the sink. A block with none beyond
// it, the usual case, is passed on as it is, without a copy.
func (r *unitReader) events(evs []event.Event) {
	first := -1
	for i := range evs {
		if t := evs[i].ReceivedTime; t > r.limit {
			first = i
			break
		} else if t > r.stats.Latest {
			r.stats.Latest = t
		}
	}
	if first < 0 {
		r.sink.Events(evs)
		return
	}
	r.kept = append(r.kept[:0], evs[:first]...)
	for i := first; i < len(evs); i++ {
		e := &evs[i]
		// The bound (event.CheckFuture) looks at the received time only, so
		// the time bounds do too: an event time ahead of it (a device clock
		// ahead, bucketed by received time) changes nothing at another clock.
		t := e.ReceivedTime
		if reason := event.CheckFuture(e, r.opts.NowMs, r.opts.MaxFuture); reason != "" {
			if r.stats.FutureFrom == 0 || t < r.stats.FutureFrom {
				r.stats.FutureFrom = t
			}
			r.stats.Valid--
			r.dead(deadletter.Record{Source: r.path, Offset: -1, Index: -1, Lost: 1, Reason: string(reason),
				Detail: fmt.Sprintf("%v is more than %v after the run's clock %s", e, r.opts.MaxFuture,
					time.UnixMilli(r.opts.NowMs).UTC().Format(time.RFC3339)),
				Payload: event.AppendBinary(nil, e)})
			continue
		}
		r.stats.Latest = max(r.stats.Latest, t)
		r.kept = append(r.kept, *e)
	}
	if len(r.kept) > 0 {
		r.sink.Events(r.kept)
	}
}

func (r *unitReader) fileDead(s FileSplit, reason avroio.Reason, detail string) {
	if reason == avroio.ReasonUnreadable {
		r.stats.ReadFailures++
	}
	r.dead(deadletter.Record{Source: s.Path, Offset: -1, Index: -1, Reason: string(reason), Detail: detail})
}

func (r *unitReader) dead(d deadletter.Record) {
	d.Pipeline = r.opts.Pipeline
	r.stats.DeadLetters++
	r.sink.DeadLetter(d)
}

// readStreamed reads a large file or a split without buffering it whole.
func (r *unitReader) readStreamed(ctx context.Context, s FileSplit) error {
	err := r.read(ctx, s, nil)
	if err != nil && unreadable(err) {
		r.fileDead(s, avroio.ReasonUnreadable, err.Error())
		return nil
	}
	if err == nil {
		r.stats.Files++
	}
	return err
}
