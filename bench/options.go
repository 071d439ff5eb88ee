package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// Participant modes (Options.Mode).
const (
	// ModeDurable: each participant is participant.OpenGroupSync over its own log in
	// the data directory, with a Service that always votes ACK: every prepare and every
	// commit is synced before it is answered, as in production.
	ModeDurable = "durable"
	// ModeNoop: each participant answers the protocol at once, without a log or any
	// state, so that what is measured is the coordinator alone.
	ModeNoop = "noop"
)

// Coordinator log modes (Options.Log).
const (
	// LogDurable: the coordinator's log fsyncs as it does in production.
	LogDurable = "durable"
	// LogNoSync: the coordinator's log writes its records but its fsyncs return at once.
	// It is NOT durable; it exists to tell the cost of the fsync from the rest.
	LogNoSync = "nosync"
)

// Limits of Options, named with their unit last.
const (
	participantsMax = 32 // the coordinator's default ParticipantsMax
	concurrencyMax  = 4096
	durationMax     = 24 * time.Hour
	samplesMax      = 10_000 // memory samples kept by one Run
	fsyncSamplesMax = 100_000
)

// Options configure a benchmark run. Zero values mean the defaults (Validate checks them
// after defaults are applied; Run applies them).
type Options struct {
	// Participants is K, the participants of every transaction. Default 2.
	Participants int
	// Concurrency is C: in a closed loop, the workers that each run one transaction
	// after another; in an open loop, the most transactions in flight at once (arrivals
	// beyond that wait, and their wait counts in their latency). Default 64.
	Concurrency int
	// Duration bounds the measured phase (and, separately, the floor's). With
	// Transactions set it is a safety bound: the run ends at whichever comes first.
	// Default 10s.
	Duration time.Duration
	// Transactions, if positive, ends the measured phase after this many transactions
	// (and the floor's after as many).
	Transactions int
	// Rate, if positive, makes the load an open loop: transactions arrive at this many
	// per second on a fixed schedule, whatever the latency, and each latency is measured
	// from its scheduled arrival (no coordinated omission). Zero: closed loop.
	Rate float64
	// Mode is the participants' kind: ModeDurable (default) or ModeNoop.
	Mode string
	// Log is the coordinator log's kind: LogDurable (default) or LogNoSync.
	Log string
	// Shards is the coordinator's number of engines. Zero: httpnet's default.
	Shards int
	// DataDir is where the run makes (and at the end removes) its temporary directory,
	// for the coordinator's log, the participants' logs and the fsync probe: choose it
	// on the file system to be measured. Default os.TempDir().
	DataDir string
	// Warmup is run, with the same load, before each measured phase (the floor's and
	// dtc's), and not counted. Zero: the default 2s; negative: no warm-up.
	Warmup time.Duration
	// FloorDuration bounds the raw-HTTP floor's measured phase. Zero: Duration.
	FloorDuration time.Duration
	// Rounds is how many alternating slices (floor, then dtc) Duration, FloorDuration
	// and Transactions are cut into. Measuring both in turns, rather than one after the
	// other, makes the ratio hold on a machine that is doing something else too. Zero:
	// 4 when measuring by duration, 1 when counting Transactions or profiling.
	Rounds int
	// FsyncSamples is how many write+fdatasync probes measure the fsync floor (bounded
	// to 2s as well). Default 500.
	FsyncSamples int
	// SampleEvery is how often memory (RSS, Go heap, goroutines) is sampled during the
	// measured phase. Default 1s.
	SampleEvery time.Duration
	// RequestTimeout bounds one transaction as the load's client sees it; beyond it the
	// transaction counts as a timeout error. Default 30s.
	RequestTimeout time.Duration
	// DoneRetention is the coordinator's: how long a finished transaction is remembered.
	// Zero: the coordinator's default (10 minutes). Soak lowers it so that the memory
	// held for finished transactions reaches its steady state before sampling starts.
	DoneRetention time.Duration
	// DecidedMax is the participants': how many decided transactions each remembers.
	// Zero: participant.DefaultConfig's.
	DecidedMax int
	// NoBatch turns the coordinator's phase-2 batching off (httpnet/transport.Options.
	// NoBatch, dtc serve --no-batch): it never uses POST …/batch, although the
	// participants offer it, and sends every commit and rollback in a request of its
	// own. False: batching on, as dtc serve runs by default.
	NoBatch bool
	// Passive makes the participants say nothing of asking about transactions in doubt
	// (no participant.HeaderInDoubt, no Resolver), like services that only implement
	// the protocol's endpoints: dtc then syncs every begin record before the prepares
	// leave, one fsync more on each transaction's path. False: they ask, as
	// participants built on the participant package with a Resolver do.
	Passive bool
	// Tracing makes dtc trace every transaction with OpenTelemetry and export the spans
	// over OTLP/HTTP to a collector in this process that discards them, as dtc serve
	// --otlp-endpoint does (the participants are not traced). False: off, as dtc serve
	// runs by default.
	Tracing bool
	// TracingSampleRatio is the fraction of transactions Tracing traces (dtc serve
	// --otlp-sample-ratio). Zero: 1, every one.
	TracingSampleRatio float64

	// Logger gets the logs of the coordinator and the participants. Default: nowhere.
	Logger *slog.Logger
	// CPUProfile, if set, receives a pprof CPU profile of dtc's measured phase only.
	CPUProfile io.Writer
	// Progress, if set, gets one line per phase as the run goes.
	Progress io.Writer
}

const (
	defaultParticipants   = 2
	defaultConcurrency    = 64
	defaultDuration       = 10 * time.Second
	defaultWarmup         = 2 * time.Second
	defaultFsyncSamples   = 500
	defaultRounds         = 4
	roundsMax             = 1000
	defaultSampleEvery    = time.Second
	defaultRequestTimeout = 30 * time.Second
	fsyncProbeMax         = 2 * time.Second
)

// withDefaults returns o with zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.Participants == 0 {
		o.Participants = defaultParticipants
	}
	if o.Concurrency == 0 {
		o.Concurrency = defaultConcurrency
	}
	if o.Duration == 0 {
		o.Duration = defaultDuration
	}
	if o.Mode == "" {
		o.Mode = ModeDurable
	}
	if o.Log == "" {
		o.Log = LogDurable
	}
	if o.Warmup == 0 {
		o.Warmup = defaultWarmup
	}
	if o.FloorDuration == 0 {
		o.FloorDuration = o.Duration
	}
	if o.Rounds == 0 {
		o.Rounds = defaultRounds
		if o.Transactions > 0 || o.CPUProfile != nil {
			o.Rounds = 1
		}
	}
	if o.FsyncSamples == 0 {
		o.FsyncSamples = defaultFsyncSamples
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = defaultSampleEvery
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = defaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every option out of range, after defaults. Run calls it.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Participants < 1 || o.Participants > participantsMax {
		bad("Participants must be between 1 and %d, got %d", participantsMax, o.Participants)
	}
	if o.Concurrency < 1 || o.Concurrency > concurrencyMax {
		bad("Concurrency must be between 1 and %d, got %d", concurrencyMax, o.Concurrency)
	}
	if o.Duration < 0 || o.Duration > durationMax {
		bad("Duration must be between 0 and %v, got %v", durationMax, o.Duration)
	}
	if o.FloorDuration < 0 || o.FloorDuration > durationMax {
		bad("FloorDuration must be between 0 and %v, got %v", durationMax, o.FloorDuration)
	}
	if o.Warmup > durationMax {
		bad("Warmup must be at most %v, got %v", durationMax, o.Warmup)
	}
	if o.Transactions < 0 {
		bad("Transactions must not be negative, got %d", o.Transactions)
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate > 1e7 {
		bad("Rate must be between 0 (closed loop) and 1e7 per second, got %v", o.Rate)
	}
	switch o.Mode {
	case ModeDurable, ModeNoop:
	default:
		bad("Mode must be %q or %q, got %q", ModeDurable, ModeNoop, o.Mode)
	}
	switch o.Log {
	case LogDurable, LogNoSync:
	default:
		bad("Log must be %q or %q, got %q", LogDurable, LogNoSync, o.Log)
	}
	if o.Shards < 0 || o.Shards > 1024 {
		bad("Shards must be between 0 (httpnet's default) and 1024, got %d", o.Shards)
	}
	if o.Rounds < 1 || o.Rounds > roundsMax {
		bad("Rounds must be between 1 and %d, got %d", roundsMax, o.Rounds)
	}
	if o.CPUProfile != nil && o.Rounds != 1 {
		bad("CPUProfile needs Rounds 1 (one profile of one slice), got %d", o.Rounds)
	}
	if o.Transactions > 0 && o.Transactions < o.Rounds {
		bad("Transactions (%d) must be at least Rounds (%d)", o.Transactions, o.Rounds)
	}
	if o.FsyncSamples < 1 || o.FsyncSamples > fsyncSamplesMax {
		bad("FsyncSamples must be between 1 and %d, got %d", fsyncSamplesMax, o.FsyncSamples)
	}
	if o.SampleEvery < 10*time.Millisecond {
		bad("SampleEvery must be at least 10ms, got %v", o.SampleEvery)
	}
	if o.RequestTimeout < time.Millisecond {
		bad("RequestTimeout must be at least 1ms, got %v", o.RequestTimeout)
	}
	if o.DoneRetention < 0 {
		bad("DoneRetention must not be negative, got %v", o.DoneRetention)
	}
	if o.DecidedMax < 0 {
		bad("DecidedMax must not be negative, got %d", o.DecidedMax)
	}
	if !(o.TracingSampleRatio >= 0 && o.TracingSampleRatio <= 1) {
		bad("TracingSampleRatio must be between 0 (every transaction) and 1, got %v", o.TracingSampleRatio)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: invalid options: %w", err)
	}
	return nil
}

// loop names the load's shape.
func (o Options) loop() string {
	if o.Rate > 0 {
		return "open"
	}
	return "closed"
}

// MarshalJSON writes durations as strings ("10s") and leaves out the writers.
func (o Options) MarshalJSON() ([]byte, error) {
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return json.Marshal(struct {
		Participants   int     `json:"participants"`
		Concurrency    int     `json:"concurrency"`
		Duration       string  `json:"duration"`
		Transactions   int     `json:"transactions,omitempty"`
		Rate           float64 `json:"rate,omitempty"`
		Loop           string  `json:"loop"`
		Mode           string  `json:"mode"`
		Log            string  `json:"log"`
		Shards         int     `json:"shards,omitempty"`
		DataDir        string  `json:"data_dir,omitempty"`
		Warmup         string  `json:"warmup,omitempty"`
		FloorDuration  string  `json:"floor_duration,omitempty"`
		Rounds         int     `json:"rounds"`
		FsyncSamples   int     `json:"fsync_samples,omitempty"`
		RequestTimeout string  `json:"request_timeout,omitempty"`
		DoneRetention  string  `json:"done_retention,omitempty"`
		DecidedMax     int     `json:"decided_max,omitempty"`
		NoBatch        bool    `json:"no_batch,omitempty"`
		Passive        bool    `json:"passive,omitempty"`
		Tracing        bool    `json:"tracing,omitempty"`
		TracingRatio   float64 `json:"tracing_sample_ratio,omitempty"`
	}{
		o.Participants, o.Concurrency, dur(o.Duration), o.Transactions, o.Rate, o.loop(),
		o.Mode, o.Log, o.Shards, o.DataDir, dur(o.Warmup), dur(o.FloorDuration), o.Rounds,
		o.FsyncSamples, dur(o.RequestTimeout), dur(o.DoneRetention), o.DecidedMax, o.NoBatch, o.Passive,
		o.Tracing, o.TracingSampleRatio,
	})
}
