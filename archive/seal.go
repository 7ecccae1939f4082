package archive

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
)

// Sealing: telling the batch which arrival hours are complete (DESIGN §3,
// complete input; the markers are io/raw's seals).
//
// An arrival hour [H, H+1h) of a kind is complete when every record
// received in it is in a durable raw file. The archiver cannot see the
// collectors, so it relies on one stated assumption: a record reaches
// Kafka within Config.SealDelay of its received_time, as the archiver's
// clock tells time. Then:
//
//   - If, at processing time w, the end offset of partition p is E (read
//     committed: the last stable offset, which is all the archiver can
//     consume), every record of p received before w − SealDelay has an
//     offset below E.
//   - Once the group's committed offset of p is at least E, every one of
//     those records is durable: the archiver commits a segment only after
//     its files are.
//   - So once that holds for every partition of the kind's topic, for one
//     observation (w, {E_p}), the kind is complete through w − SealDelay,
//     and every hour that ends by then is sealed.
//
// Committed offsets are read from the group, not from this process, so
// the rule holds however the partitions are spread over members: any
// member may seal, and two members sealing the same hour write the same
// object. An idle partition needs nothing: its end offset stops moving,
// its committed offset is already there (or, if the group never committed
// it, its log start offset stands in, since nothing below that can be
// archived any more), and it never holds a seal back. A partition whose
// log ends in a transaction marker (transactional producers; lumen's
// collectors are not) is one offset short of its end until its next
// record, and holds its kind's seals back until then.
//
// The end offsets are listed every Config.SealInterval, and an
// observation is kept until the commits catch up with it: a busy
// partition's committed offset trails its end, but passes the end listed
// a roll interval earlier. Seals move forward only: each kind resumes
// after its newest seal (raw.LatestSeal); a kind with none starts at
// Config.SealFrom, or else at the hour of its first complete observation,
// since the archiver cannot vouch for what the log held before it
// started. A record that reaches Kafka later than SealDelay still goes
// into its (sealed) hour's directory, and is counted in
// Stats.ArchivedAfterSeal.
//
// Sealing is not fatal: if Kafka or the output fails, the next interval
// tries again. Nothing is lost by a late seal, only the batch's watermark
// waits.

// maxObservations bounds the observations kept while commits are stuck.
const maxObservations = 256

// observation is the end offsets of every partition of the event topics,
// listed at one processing time.
type observation struct {
	at   time.Time
	ends map[string]map[int32]int64 // by topic; a topic with a listing error is absent
}

// sealer is the archiver's sealing state. It is used by the poll loop's
// goroutine only; next is also read by handle, under Archiver.mu.
type sealer struct {
	obs  []observation
	next map[event.Kind]time.Time // the first hour not yet sealed; absent until known
}

// seal lists the end offsets, reads the group's committed offsets, and
// seals every hour that is now complete.
func (a *Archiver) seal(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := a.cfg.Now()
	adm := kadm.NewClient(a.cl)
	topics := a.cfg.topics()
	// A partial answer (a broker down) could leave a partition out and
	// make its topic look covered: any error skips this interval.
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		a.sealFailed("list end offsets", err)
		return
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		a.sealFailed("list start offsets", err)
		return
	}
	committed, err := adm.FetchOffsets(ctx, a.cfg.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // nothing committed yet
	}
	if err != nil {
		a.sealFailed("fetch committed offsets", err)
		return
	}
	o := observation{at: now, ends: map[string]map[int32]int64{}}
	for _, topic := range topics {
		ps, ok := ends[topic]
		if !ok || len(ps) == 0 {
			continue
		}
		m := map[int32]int64{}
		for p, lo := range ps {
			if lo.Err != nil || p < 0 {
				m = nil
				break
			}
			m[p] = lo.Offset
		}
		if m != nil {
			o.ends[topic] = m
		}
	}
	a.sealing.obs = append(a.sealing.obs, o)
	if len(a.sealing.obs) > maxObservations {
		a.sealing.obs = a.sealing.obs[len(a.sealing.obs)-maxObservations:]
	}

	// position is where the group stands on a partition: its committed
	// offset, or the log start where it has none.
	position := func(topic string, p int32) (int64, bool) {
		if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
			return c.At, true
		}
		if s, ok := starts.Lookup(topic, p); ok && s.Err == nil {
			return s.Offset, true
		}
		return 0, false
	}
	oldest := len(a.sealing.obs) // the oldest observation some kind still waits for
	for _, k := range event.Kinds {
		topic := a.cfg.topic(k)
		newest := -1
		for i := len(a.sealing.obs) - 1; i >= 0 && newest < 0; i-- {
			ps, ok := a.sealing.obs[i].ends[topic]
			if !ok {
				continue
			}
			covered := true
			for p, end := range ps {
				if pos, ok := position(topic, p); !ok || pos < end {
					covered = false
					break
				}
			}
			if covered {
				newest = i
			}
		}
		if newest < 0 {
			oldest = 0
			continue
		}
		oldest = min(oldest, newest)
		a.sealThrough(ctx, k, a.sealing.obs[newest].at.Add(-a.cfg.SealDelay))
	}
	a.sealing.obs = a.sealing.obs[oldest:]
}

// sealThrough seals every hour of kind k that ends by through.
func (a *Archiver) sealThrough(ctx context.Context, k event.Kind, through time.Time) {
	next, ok := a.sealing.next[k]
	if !ok {
		latest, found, err := raw.LatestSeal(ctx, a.cfg.Output, k)
		switch {
		case err != nil:
			a.sealFailed("list seals", err)
			return
		case found:
			next = latest.Add(time.Hour)
		case !a.cfg.SealFrom.IsZero():
			next = a.cfg.SealFrom.UTC().Truncate(time.Hour)
		default:
			next = through.UTC().Truncate(time.Hour)
		}
		a.setSealNext(k, next)
		a.cfg.Logger.Info("archive: sealing", "kind", k.String(), "from", next.Format(time.RFC3339), "resumed", found)
	}
	sealed := 0
	for ; !next.Add(time.Hour).After(through); next = next.Add(time.Hour) {
		if err := raw.WriteSeal(ctx, a.cfg.Output, k, next); err != nil {
			a.sealFailed("write seal", err)
			break
		}
		a.setSealNext(k, next.Add(time.Hour))
		sealed++
	}
	if sealed > 0 {
		a.mu.Lock()
		a.stats.Seals += int64(sealed)
		a.mu.Unlock()
		a.cfg.Logger.Info("archive: sealed", "kind", k.String(), "hours", sealed, "until", next.Format(time.RFC3339))
	}
}

func (a *Archiver) setSealNext(k event.Kind, next time.Time) {
	a.mu.Lock()
	a.sealing.next[k] = next
	a.mu.Unlock()
}

// sealedBefore reports whether this process has sealed the hour of kind k
// starting at hourMs. The caller holds a.mu.
func (a *Archiver) sealedBefore(k event.Kind, hourMs int64) bool {
	next, ok := a.sealing.next[k]
	return ok && hourMs < next.UnixMilli()
}

func (a *Archiver) sealFailed(op string, err error) {
	a.mu.Lock()
	a.stats.SealErrors++
	a.mu.Unlock()
	a.cfg.Logger.Warn("archive: sealing: "+op+" failed; retrying at the next interval", "err", err)
}
