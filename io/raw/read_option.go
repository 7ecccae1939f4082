package raw

import (
	"time"

	"github.com/lumenhq/lumen/event"
)

// ReadOptions tunes ReadUnit. Zero values take the documented defaults.
type ReadOptions struct {
	// Concurrency bounds the files fetched at once within a unit. Default 16.
	Concurrency int
	// WholeFileMax is the largest whole file fetched into memory; larger
	// files and splits are streamed. Default 4 MiB.
	WholeFileMax int64
	// Retries is how often a transient filesystem failure is retried before
	// the unit fails. Default 3.
	Retries int
	// RetryBackoff is the first retry's delay, quadrupling after. Default 200ms.
	RetryBackoff time.Duration
	// SeekThreshold: a split starting further than this into its file is
	// opened at its offset (a ranged GET) rather than read through. Default 1 MiB.
	SeekThreshold int64
	// Pipeline names the pipeline in dead letters. Default "batch".
	Pipeline string
	// NowMs is the processing clock, in ms since the epoch: a valid event
	// whose event or received time is more than MaxFuture after it is a
	// future_time dead letter (event.CheckFuture). A batch run fixes it
	// once (BatchConfig.Now), so that every worker and every retry agrees.
	// Default: the time ReadUnit is called.
	NowMs int64
	// MaxFuture is how far ahead of NowMs an event may be. Default
	// event.DefaultMaxFuture (1 h).
	MaxFuture time.Duration
}

func (o *ReadOptions) ensureDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.WholeFileMax <= 0 {
		o.WholeFileMax = 4 << 20
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 200 * time.Millisecond
	}
	if o.SeekThreshold <= 0 {
		o.SeekThreshold = 1 << 20
	}
	if o.Pipeline == "" {
		o.Pipeline = "batch"
	}
	if o.NowMs == 0 {
		o.NowMs = time.Now().UnixMilli()
	}
	if o.MaxFuture <= 0 {
		o.MaxFuture = event.DefaultMaxFuture
	}
}
