package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Drain asks every Read built in this process so far to finish: each
// partition's reader stops at the next record it would read and ends its
// restriction, and partition discovery ends, so the runner's watermark
// passes every window, every pending pane fires, and the pipeline runs to
// completion with everything it read in its outputs. A Read built after
// the call is not affected (the next run of a stream in this process).
//
// Drain reaches the readers that run in this process: an in-process
// runner's (prism, direct) and LOOPBACK workers'. On a runner with remote
// workers it does nothing; drain the job in the runner there.
//
// The offsets the drained readers stopped at are held for CommitDrained:
// committing them before the pipeline has stored its outputs could lose
// what was in flight.
func Drain() { drainedThrough.Store(readSeq.Load()) }

// drainedThrough is the newest Read (its seq) that Drain has reached.
var drainedThrough atomic.Int64

// draining reports whether the Read numbered seq is to finish.
func draining(seq int64) bool { return seq > 0 && seq <= drainedThrough.Load() }

// CommitDrained commits, for every drained Read that commits offsets, the
// offset each partition's reader stopped at, to its group, and returns
// where the readers of every drained Read stopped (committing or not).
// Call it once the drained pipeline has finished successfully: its outputs
// are then stored, so a restart from the committed offsets
// (--start=committed) reads exactly what the drained run did not. It
// returns the stop offsets, and how many partitions it committed.
func CommitDrained(ctx context.Context) (Offsets, int, error) {
	drained.Lock()
	pending := drained.reads
	drained.reads = nil
	drained.Unlock()
	ends := Offsets{}
	n := 0
	var errs []error
	for _, d := range pending {
		var os kadm.Offsets
		for tp, at := range d.at {
			os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: at, LeaderEpoch: -1})
			ends[tp.String()] = max(ends[tp.String()], at)
		}
		if d.group == "" {
			continue
		}
		if err := d.commit(ctx, os); err != nil {
			errs = append(errs, err)
			continue
		}
		n += len(d.at)
	}
	return ends, n, errors.Join(errs...)
}

// drained holds the stop offsets of drained Reads, until CommitDrained.
var drained struct {
	sync.Mutex
	reads map[string]*drainedRead // by ReadID
}

type drainedRead struct {
	fn    kafkaFn // brokers and security, for a client of CommitDrained's own
	group string  // "" if the Read does not commit offsets
	at    map[TopicPartition]int64
}

// stopAt records that a drained reader of r stopped before offset at.
func (r *reader) stopAt(tp TopicPartition, at int64) {
	drained.Lock()
	defer drained.Unlock()
	if drained.reads == nil {
		drained.reads = map[string]*drainedRead{}
	}
	d := drained.reads[r.ReadID]
	if d == nil {
		d = &drainedRead{fn: kafkaFn{Brokers: r.Brokers, Security: r.Security}, at: map[TopicPartition]int64{}}
		if r.Cfg.CommitOffsets {
			d.group = r.Cfg.Group
		}
		drained.reads[r.ReadID] = d
	}
	tp.New = false
	if prev, ok := d.at[tp]; !ok || at > prev {
		d.at[tp] = at
	}
}

func (d *drainedRead) commit(ctx context.Context, os kadm.Offsets) error {
	if err := d.fn.setup(); err != nil {
		return fmt.Errorf("kafkaio: committing drained offsets: %w", err)
	}
	defer d.fn.Teardown()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := d.fn.admin.CommitOffsets(cctx, d.group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("kafkaio: committing drained offsets of group %s: %w", d.group, err)
	}
	return nil
}
