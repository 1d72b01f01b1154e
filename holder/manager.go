package holder

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/cgroup"
)

// Kind is the kind of a holder process.
type Kind string

// The kinds of holder processes; disk fill is files, not processes.
const (
	kindMemory Kind = "memory"
	kindCPU    Kind = "cpu"
)

// errClosed is returned by the methods of a Manager after Close.
var errClosed = errors.New("holder manager is closed")

// Config is what a Manager, and Recover, work with.
type Config struct {
	Binary   string // executable started as holders; "" means /proc/self/exe
	StateDir string // registry and lock
	FillDir  string // disk fill files; "" means no disk fill
	DiskPath string // the fill dir must be on this one's filesystem; "" means unchecked
	Chunk    int64  // largest memory holder, <= MaxChunk; 0 means MaxChunk
	Proc     string // procfs root for our own holders, "" means /proc
	// Pids reads the pids limit of the daemon's cgroup before each holder
	// starts (see roomFor); nil means no limit.
	Pids func() (cgroup.Pids, error)
	// Started is when the daemon started: a --recover that let the state
	// dir's lock go since then ran while it was starting, and Open
	// refuses (zero: Open never refuses so).
	Started time.Time
	Logger  *slog.Logger
}

// Desired is the load the holders should add.
type Desired struct {
	CPU          float64 // share of the whole machine, 0..1
	Memory, Disk int64   // bytes
}

// Usage is what the holders add right now, measured: the holders' CPU time
// from /proc/<pid>/stat (their rusage once ended), the memory holders'
// VmRSS from /proc/<pid>/status, the fill files' allocated blocks.
type Usage struct {
	// CPUTime is the CPU time of every holder process since Open, memory
	// holders (filling their ballast) and ended holders included: a
	// counter, so that every reader takes its own difference.
	CPUTime       time.Duration
	Memory, Disk  int64 // bytes
	CPUHolders    int
	MemoryHolders int
	DiskFiles     int
	// The failures of each resource's holders since Open, counters:
	// holders that ended by themselves, failed to start, were not ready or
	// did not answer in time; for disk, resizes of the fill that failed.
	CPUFailures, MemoryFailures, DiskFailures uint64
	// The starts of each kind refused since Open because the cgroup's
	// pids limit left too little room, counters.
	CPURefusals, MemoryRefusals uint64
}

// Restarts of a kind whose holders keep failing back off: the first
// failure is replaced at once, then starts are restartBackoff apart, twice
// that after each further failure, up to restartBackoffMax, until one of
// the kind's holders has run stableAfter.
const (
	restartBackoff    = 15 * time.Second
	restartBackoffMax = 10 * time.Minute
	stableAfter       = 10 * time.Minute
)

// diskRecheck is how often Apply resizes the fill to an unchanged total,
// which brings back fill removed from outside; a new total is resized at
// once.
const diskRecheck = 5 * time.Second

// restarts is how the holders of one kind have fared since Open.
type restarts struct {
	kind     Kind
	failures uint64
	// streak counts the failures in a row, each of a holder that ran less
	// than stableAfter.
	streak    int
	lastStart time.Time
	// backingOff is set once the back-off has been logged.
	backingOff bool
	// refusals counts the starts refused for want of pids; refusing is
	// set from the first until a start is allowed again.
	refusals uint64
	refusing bool
}

// wait is the least time from one start of the kind to the next.
func (r *restarts) wait() time.Duration {
	if r.streak < 2 {
		return 0
	}
	return min(restartBackoff<<min(r.streak-2, 16), restartBackoffMax)
}

// mayStart tells whether a holder of the kind may start at now.
func (r *restarts) mayStart(now time.Time) bool {
	return !now.Before(r.lastStart.Add(r.wait()))
}

// A holder is a Go process and each of its threads takes one of the
// cgroup's pids: a memory holder runs 6, a CPU burner 10 or 11 on 2 CPUs
// (one locked thread per CPU, the rest the Go runtime's), measured. The
// daemon's own Go runtime makes a thread whenever a goroutine blocks in a
// system call and dies ("fatal error: newosproc") when the cgroup refuses
// one, so daemonThreads more are always left to it.
const (
	memoryHolderThreads = 8
	cpuHolderThreads    = 10 // plus one per CPU
	daemonThreads       = 8
)

// holderThreads is the most threads a holder of kind runs on cpus CPUs.
func holderThreads(kind Kind, cpus int) int64 {
	if kind == kindCPU {
		return int64(cpuHolderThreads + cpus)
	}
	return memoryHolderThreads
}

// roomFor tells whether a holder of kind may start with free pids left in
// the cgroup: its threads and the daemon's headroom must fit.
func roomFor(kind Kind, cpus int, free int64) bool {
	return free >= holderThreads(kind, cpus)+daemonThreads
}

// Manager starts, resizes and stops the holders of one host, keeps their
// registry, and holds the state dir's lock from Open to Close. Its methods
// are safe for concurrent use, and none waits for a holder: holders are
// stopped with SIGKILL, told a new duty without waiting for the answer, and
// checked for failures (ended, not ready or not answering in time) at the
// next Apply or Usage. Fill resizes and registry writes run in goroutines
// of their own, on the latest load and holders.
type Manager struct {
	cfg    Config
	logger *slog.Logger
	launch *launcher // its now is the clock of restarts and timeouts
	lock   *stateLock
	fill   *fill // nil without a fill dir

	closed atomic.Bool // set under mu

	// mu guards the holders. It is held only for what never waits on a
	// holder or on slow I/O: starting a process, signalling it, writing it
	// one short line.
	mu       sync.Mutex
	memory   []*holderProcess // in start order, filled or filling
	cpu      *holderProcess
	restarts map[Kind]*restarts
	saved    []holderEntry // as last handed to registry
	// diskAsked is the fill total last handed to disk, at diskAskedAt.
	diskAsked   int64
	diskAskedAt time.Time

	// cpuMu guards the CPU time ledger, apart from mu so that CPUTime
	// never waits for Apply.
	cpuMu sync.Mutex
	// counted are the holders started and not yet reaped, killed or not;
	// ended is the final CPU time of those reaped.
	counted []*holderProcess
	ended   time.Duration

	registry     *latest[[]holderEntry] // writes the registry
	disk         *latest[int64]         // resizes the fill; nil without a fill dir
	diskFailures atomic.Uint64
}

// latest runs do in a goroutine of its own, one run at a time, always on
// the latest value asked for: the callers never wait for it, and values
// asked for during a slow run (a fill growing, a registry write waiting for
// the disk) make one run after it.
type latest[T any] struct {
	do   func(T) error
	wake chan struct{} // holds a token while a value is queued
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	value   T
	queued  bool
	running bool
	lastErr error // of the latest run finished
}

// runLatest starts the goroutine that runs do.
func runLatest[T any](do func(T) error) *latest[T] {
	w := &latest[T]{do: do, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *latest[T]) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		}
		select {
		case <-w.quit:
			return
		default:
		}
		w.mu.Lock()
		v := w.value
		w.queued, w.running = false, true
		w.mu.Unlock()
		err := w.do(v)
		w.mu.Lock()
		w.running, w.lastErr = false, err
		w.mu.Unlock()
	}
}

// ask queues v for the next run, replacing any value queued before, and
// returns the error of the latest run finished.
func (w *latest[T]) ask(v T) error {
	w.mu.Lock()
	w.value, w.queued = v, true
	err := w.lastErr
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return err
}

// err is the error of the latest run finished.
func (w *latest[T]) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// stop ends the goroutine after the run in progress, if any, and drops
// what is queued.
func (w *latest[T]) stop() {
	close(w.quit)
	<-w.done
}

// resolved is a Config with its defaults filled in.
type resolved struct {
	Config
	argv0 string // the holders' argv[0]
	owner string // StateDir, absolute with symlinks resolved: ownerEnv's value
}

// resolve checks cfg and fills in its defaults: Open and Recover both
// work with what it returns.
func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Proc == "" {
		r.Proc = "/proc"
	}
	if r.StateDir == "" {
		return r, errors.New("holder config: no state dir")
	}
	switch {
	case r.Chunk == 0:
		r.Chunk = MaxChunk
	case r.Chunk < int64(os.Getpagesize()) || r.Chunk > MaxChunk:
		return r, fmt.Errorf("memory chunk %d: not between a page (%d) and %d bytes", r.Chunk, os.Getpagesize(), int64(MaxChunk))
	}
	if r.Binary == "" {
		// Started through /proc/self/exe, the binary we run even when an
		// upgrade has replaced its file; argv[0] names it so that --recover
		// and a later run know the holders as cro-exporter's.
		r.Binary = "/proc/self/exe"
		r.argv0 = "cro-exporter"
		if exe, err := os.Executable(); err == nil && isCroExporter(exe) {
			r.argv0 = exe
		}
	} else {
		abs, err := filepath.Abs(r.Binary)
		if err != nil {
			return r, fmt.Errorf("holder binary %s: %w", r.Binary, err)
		}
		if !isCroExporter(abs) {
			return r, fmt.Errorf("holder binary %s: its name must end in cro-exporter, which is how holders are recognized", r.Binary)
		}
		r.Binary, r.argv0 = abs, abs
	}
	return r, nil
}

// Open takes the state dir's lock (making the dir 0700 when missing), cleans
// up what an earlier run left and adopts its fill files. The earlier run's
// holder processes cannot be adopted (their stdin pipes are gone, so they
// end by themselves); any still running is killed: those in the registry
// whose pid, start time and command line all still match, and those a scan
// of /proc finds running our holder subcommand that are marked with this
// state dir or whose parent is gone. A process that merely reused a pid is
// never signalled. Fill files are kept; the next Apply resizes them.
func Open(cfg Config) (*Manager, error) {
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if r.owner, err = ownerOf(r.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	lock, err := lockStateDir(r.StateDir, r.Started)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:    r.Config,
		logger: r.Logger,
		launch: &launcher{binary: r.Binary, argv0: r.argv0, owner: r.owner, proc: r.Proc, logger: r.Logger, now: time.Now},
		lock:   lock,
		restarts: map[Kind]*restarts{
			kindMemory: {kind: kindMemory},
			kindCPU:    {kind: kindCPU},
		},
	}
	fail := func(err error) (*Manager, error) {
		lock.release()
		return nil, err
	}
	entries, err := loadRegistry(r.StateDir, time.Now(), r.Logger)
	if err != nil {
		return fail(err)
	}
	c := cleanLeftovers(r, entries)
	for _, h := range c.stopped {
		r.Logger.Warn("Killed a holder an earlier run left", "kind", h.Kind, "pid", h.Pid)
	}
	for _, n := range c.notes {
		r.Logger.Debug(n)
	}
	for _, f := range c.failures {
		r.Logger.Error("Could not kill a holder an earlier run left", "err", f)
	}
	// What could not be killed stays in the registry for --recover.
	if err := saveRegistry(r.StateDir, c.survivors); err != nil {
		return fail(err)
	}
	if r.FillDir != "" {
		if m.fill, err = openFill(r.FillDir, r.DiskPath, r.owner); err != nil {
			return fail(err)
		}
	}
	m.registry = runLatest(func(entries []holderEntry) error { return saveRegistry(r.StateDir, entries) })
	if m.fill != nil {
		m.disk = runLatest(m.resizeFill)
	}
	return m, nil
}

// ownerOf is dir made absolute with its symlinks resolved, so that two
// spellings of one state dir mark holders alike.
func ownerOf(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// check rejects a Desired that is not a load.
func (d Desired) check() error {
	var errs []error
	if math.IsNaN(d.CPU) || d.CPU < 0 || d.CPU > 1 {
		errs = append(errs, fmt.Errorf("desired CPU %v: not a share between 0 and 1", d.CPU))
	}
	if d.Memory < 0 {
		errs = append(errs, fmt.Errorf("desired memory %d: negative", d.Memory))
	}
	if d.Disk < 0 {
		errs = append(errs, fmt.Errorf("desired disk %d: negative", d.Disk))
	}
	return errors.Join(errs...)
}

// Apply starts, changes and stops holders until they add d: memory in
// holders of at most Chunk bytes each, CPU in one holder whose duty is
// changed in place, disk in fill files. Bad input is an error that changes
// nothing. Otherwise each resource is applied even when another fails, and
// the errors are joined. Apply is idempotent: called again with the same
// load, it replaces the holders that have failed since.
//
// Memory is held as d.Memory/Chunk full chunks plus one holder for the
// remainder. Holders of the sizes wanted are kept (the oldest first), the
// others killed, and the missing sizes started, so holders never hold more
// than the larger of the old and the new amount: a change of less than a
// chunk replaces the remainder holder and dips by its size for the second
// or so that takes.
//
// Apply waits for no holder and for no disk I/O. It does not wait for new
// holders to be ready: a memory holder counts, in Usage, for what it has
// made resident so far, and a later Apply may kill it while it fills. It
// writes a new duty without waiting for the answer. The fill is resized
// (when its total changes, and every diskRecheck), and the registry
// written, in the background: Apply returns the errors of the latest ones
// finished. A kind of holder that keeps failing is started
// again ever less often (see restartBackoff), which Apply does not report
// as an error.
func (m *Manager) Apply(d Desired) error {
	if err := d.check(); err != nil {
		return err
	}
	if d.Disk > 0 && m.fill == nil {
		return fmt.Errorf("desired disk %d: no fill dir", d.Disk)
	}
	want := memoryChunks(d.Memory, m.cfg.Chunk)
	for _, size := range want {
		if err := CheckMemorySize(size); err != nil {
			return fmt.Errorf("desired memory %d: chunk of %d: %w", d.Memory, size, err)
		}
	}
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return errClosed
	}
	now := m.launch.now()
	m.reap(now)
	errs := []error{m.applyMemory(want, now), m.applyCPU(d.CPU, now)}
	m.noteRegistry()
	askDisk := m.disk != nil && (d.Disk != m.diskAsked || now.Sub(m.diskAskedAt) >= diskRecheck)
	if askDisk {
		m.diskAsked, m.diskAskedAt = d.Disk, now
	}
	m.mu.Unlock()
	switch {
	case askDisk:
		errs = append(errs, m.disk.ask(d.Disk))
	case m.disk != nil:
		errs = append(errs, m.disk.err())
	}
	errs = append(errs, m.registry.err())
	return errors.Join(errs...)
}

// memoryChunks splits total into full chunks and a remainder, largest first.
func memoryChunks(total, chunk int64) []int64 {
	var sizes []int64
	for ; total >= chunk; total -= chunk {
		sizes = append(sizes, chunk)
	}
	if total > 0 {
		sizes = append(sizes, total)
	}
	return sizes
}

// reconcileChunks matches the sizes of the running holders (in start order)
// to the sizes wanted: it returns the indexes of the holders to stop and the
// sizes to start. Each size wanted keeps the oldest unmatched holder of that
// size. The indexes to stop are highest first.
func reconcileChunks(have, want []int64) (stop []int, start []int64) {
	kept := make([]bool, len(have))
	for _, size := range want {
		found := false
		for i, h := range have {
			if !kept[i] && h == size {
				kept[i], found = true, true
				break
			}
		}
		if !found {
			start = append(start, size)
		}
	}
	for i := len(have) - 1; i >= 0; i-- {
		if !kept[i] {
			stop = append(stop, i)
		}
	}
	return stop, start
}

// applyMemory brings the memory holders to the sizes wanted: it kills the
// ones in excess, and starts new ones without waiting for them to fill.
func (m *Manager) applyMemory(want []int64, now time.Time) error {
	have := make([]int64, len(m.memory))
	for i, p := range m.memory {
		have[i] = p.Size
	}
	stopIdx, start := reconcileChunks(have, want)
	for _, i := range stopIdx { // highest index first
		m.memory[i].kill()
		m.memory = slices.Delete(m.memory, i, i+1)
	}
	var errs []error
	for _, size := range start {
		p, err := m.start(kindMemory, size, 0, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p == nil {
			break // backing off or refused: so would the next
		}
		m.memory = append(m.memory, p)
	}
	return errors.Join(errs...)
}

// applyCPU starts, changes or kills the CPU holder. A holder whose stdin
// cannot take the new duty has stopped reading it: it has failed, and
// another starts in its place.
func (m *Manager) applyCPU(duty float64, now time.Time) error {
	if m.cpu != nil && duty == 0 {
		m.cpu.kill()
		m.cpu = nil
	}
	if m.cpu != nil && duty != m.cpu.Duty {
		if err := m.cpu.setDuty(duty); err != nil {
			m.cpu.kill()
			m.failed(m.cpu.Kind, now.Sub(m.cpu.started), err, true)
			m.cpu = nil
		}
	}
	if m.cpu != nil || duty == 0 {
		return nil
	}
	p, err := m.start(kindCPU, 0, duty, now)
	m.cpu = p
	return err
}

// start starts a holder unless its kind is backing off or the cgroup has
// too few pids left for it (nil, nil). A start that fails counts as a
// failure of the kind; one refused for pids is counted apart, and logged
// once when refusals start and once when they end.
func (m *Manager) start(kind Kind, size int64, duty float64, now time.Time) (*holderProcess, error) {
	r := m.restarts[kind]
	if !r.mayStart(now) {
		return nil, nil
	}
	if !m.pidsAllow(r) {
		return nil, nil
	}
	r.lastStart = now
	p, err := m.launch.start(kind, size, duty)
	if err != nil {
		m.failed(kind, 0, err, false)
		return nil, err
	}
	m.cpuMu.Lock()
	m.counted = append(m.counted, p)
	m.cpuMu.Unlock()
	return p, nil
}

// pidsAllow tells whether the cgroup's pids limit leaves room for a holder
// of r's kind, counting and logging a refusal. A limit that cannot be read
// is no reason to refuse: the loop, which reads the same files every tick,
// reports that once.
func (m *Manager) pidsAllow(r *restarts) bool {
	if m.cfg.Pids == nil {
		return true
	}
	pids, err := m.cfg.Pids()
	if err != nil {
		m.logger.Debug("reading the cgroup's pids limit", "err", err)
		return true
	}
	need := holderThreads(r.kind, runtime.NumCPU())
	if roomFor(r.kind, runtime.NumCPU(), pids.Free()) {
		if r.refusing {
			r.refusing = false
			m.logger.Info(fmt.Sprintf("%s holders start again: the cgroup's pids limit leaves room", r.kind), "pids_max", pids.Max, "pids_current", pids.Current)
		}
		return true
	}
	r.refusals++
	if !r.refusing {
		r.refusing = true
		m.logger.Warn(fmt.Sprintf("not starting %s holders: the cgroup's pids limit leaves %d pids, and a holder needs %d plus %d for the daemon's own threads",
			r.kind, pids.Free(), need, daemonThreads), "pids_max", pids.Max, "pids_current", pids.Current)
	}
	return false
}

// resizeFill resizes the fill to total bytes and counts a failure.
func (m *Manager) resizeFill(total int64) error {
	err := m.fill.Resize(total)
	if err != nil {
		m.diskFailures.Add(1)
	}
	return err
}

// reap kills and drops the holders that have failed by now: ended by
// themselves (the OOM killer, a kill from outside), said something out of
// turn, were not ready or did not answer in time. A kind one of whose
// holders has run stableAfter is well again.
func (m *Manager) reap(now time.Time) {
	m.memory = slices.DeleteFunc(m.memory, func(p *holderProcess) bool { return m.dropFailed(p, now) })
	if m.cpu != nil && m.dropFailed(m.cpu, now) {
		m.cpu = nil
	}
	running := slices.Clone(m.memory)
	if m.cpu != nil {
		running = append(running, m.cpu)
	}
	for _, p := range running {
		if r := m.restarts[p.Kind]; r.streak > 0 && now.Sub(p.started) >= stableAfter {
			m.wellAgain(r)
		}
	}
}

// dropFailed kills a holder that has failed by now and counts it, and
// tells whether it did.
func (m *Manager) dropFailed(p *holderProcess, now time.Time) bool {
	err := p.failure(now)
	if err == nil {
		return false
	}
	p.kill()
	m.failed(p.Kind, now.Sub(p.started), err, true)
	return true
}

// failed counts a failure of a holder of kind that ran for ran, and logs
// it when log is set (the caller reports it otherwise). Once failures come
// in a row, the kind backs off, which is logged once instead.
func (m *Manager) failed(kind Kind, ran time.Duration, err error, log bool) {
	r := m.restarts[kind]
	r.failures++
	if ran >= stableAfter {
		m.wellAgain(r)
	}
	r.streak++
	switch {
	case r.backingOff:
		m.logger.Debug("Holder failed again", "kind", kind, "err", err)
	case r.streak >= 2:
		r.backingOff = true
		m.logger.Warn(fmt.Sprintf("%s holder keeps ending by itself; restarting it at most every %s, then ever less often, up to every %s",
			kind, r.wait(), restartBackoffMax), "err", err)
	case log:
		m.logger.Warn("Holder failed; the next apply replaces it", "kind", kind, "err", err)
	}
}

// wellAgain ends a kind's streak of failures: its next failure is replaced
// at once again.
func (m *Manager) wellAgain(r *restarts) {
	if r.backingOff {
		m.logger.Info(fmt.Sprintf("%s holder has run %s; restarting it at once again should it end", r.kind, stableAfter))
	}
	r.streak, r.backingOff = 0, false
}

// noteRegistry hands the registry writer the holders running now, when
// they changed or the latest write failed.
func (m *Manager) noteRegistry() {
	var entries []holderEntry
	for _, p := range m.memory {
		entries = append(entries, entryOf(p))
	}
	if m.cpu != nil {
		entries = append(entries, entryOf(m.cpu))
	}
	if slices.Equal(entries, m.saved) && m.registry.err() == nil {
		return
	}
	m.saved = entries
	m.registry.ask(entries)
}

// Usage measures what the holders add now. It first drops the holders that
// have failed, as Apply does; the next Apply replaces them.
func (m *Manager) Usage() (Usage, error) {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return Usage{}, errClosed
	}
	m.reap(m.launch.now())
	m.noteRegistry()
	memory := slices.Clone(m.memory)
	u := Usage{
		CPUFailures:    m.restarts[kindCPU].failures,
		MemoryFailures: m.restarts[kindMemory].failures,
		DiskFailures:   m.diskFailures.Load(),
		CPURefusals:    m.restarts[kindCPU].refusals,
		MemoryRefusals: m.restarts[kindMemory].refusals,
	}
	if m.cpu != nil {
		u.CPUHolders = 1
	}
	m.mu.Unlock()
	var errs []error
	for _, p := range memory {
		rss, err := readRSS(m.launch.proc, p.Pid)
		if p.hasExited() || errors.Is(err, errNoProcess) {
			continue // ended just now; the next call reaps it
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u.Memory += rss
		u.MemoryHolders++
	}
	var err error
	if u.CPUTime, err = m.CPUTime(); err != nil {
		errs = append(errs, err)
	}
	if m.fill != nil {
		files, bytes, err := m.fill.Usage()
		if err != nil {
			errs = append(errs, err)
		}
		u.DiskFiles, u.Disk = files, bytes
	}
	return u, errors.Join(errs...)
}

// CPUTime is the CPU time of every holder process since Open, as in
// Usage.CPUTime. It is cheap, and never waits for anything else the
// manager does: the give-way watcher reads it four times a second.
func (m *Manager) CPUTime() (time.Duration, error) {
	if m.closed.Load() {
		return 0, errClosed
	}
	m.cpuMu.Lock()
	m.counted = slices.DeleteFunc(m.counted, func(p *holderProcess) bool {
		if !p.hasExited() {
			return false
		}
		final, _ := p.cpuTime(m.launch.proc) // reaped: no error
		m.ended += final
		return true
	})
	counted, total := slices.Clone(m.counted), m.ended
	m.cpuMu.Unlock()
	var errs []error
	for _, p := range counted {
		t, err := p.cpuTime(m.launch.proc)
		total += t
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// Close kills every holder and waits until they are reaped, removes every
// fill file, empties the registry and releases the lock. It waits for a
// fill resize in progress, never for a holder to cooperate: SIGKILL ends
// a stopped holder too. Calling it again does nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return nil
	}
	m.closed.Store(true)
	for _, p := range m.memory {
		p.kill()
	}
	if m.cpu != nil {
		m.cpu.kill()
	}
	m.memory, m.cpu = nil, nil
	m.mu.Unlock()
	m.cpuMu.Lock()
	killed := slices.Clone(m.counted)
	m.cpuMu.Unlock()
	errs := []error{waitReaped(killed, stopTimeout)}
	m.registry.stop()
	if m.disk != nil {
		m.disk.stop()
		if _, _, err := m.fill.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, saveRegistry(m.cfg.StateDir, nil), m.lock.release())
	return errors.Join(errs...)
}
