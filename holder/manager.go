package holder

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cro-exporter/cro-exporter/internal/host"
	"github.com/cro-exporter/cro-exporter/internal/statefile"
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

// diskRecheck is how often Apply resizes the fill to an unchanged total,
// which brings back fill removed from outside; a new total is resized at
// once.
const diskRecheck = 5 * time.Second

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
	fill   diskFill // nil without a fill dir

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
	if err := statefile.MkdirAll(r.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if r.owner, err = ownerOf(r.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	procs, err := newProcesses()
	if err != nil {
		return nil, err
	}
	lock, err := lockStateDir(r.StateDir, r.Started)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:    r.Config,
		logger: r.Logger,
		launch: &launcher{binary: r.binary, argv0: r.argv0, owner: r.owner, procs: procs, logger: r.Logger, now: time.Now},
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
		f, err := openFill(r.FillDir, r.DiskPath, r.owner)
		if err != nil {
			return fail(err)
		}
		m.fill = f
	}
	m.registry = runLatest(func(entries []holderEntry) error { return saveRegistry(r.StateDir, entries) })
	if m.fill != nil {
		m.disk = runLatest(m.resizeFill)
	}
	return m, nil
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
func (m *Manager) Apply(d Load) error {
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

// Held measures what the holders hold now. It first drops the holders that
// have failed, as Apply does; the next Apply replaces them.
func (m *Manager) Held() (Held, error) {
	m.mu.Lock()
	if m.closed.Load() {
		m.mu.Unlock()
		return Held{}, errClosed
	}
	m.reap(m.launch.now())
	m.noteRegistry()
	memory := slices.Clone(m.memory)
	var u Held
	for kind, r := range map[Kind]host.Resource{kindCPU: host.CPU, kindMemory: host.Memory} {
		*u.Failures.Of(r), *u.Refusals.Of(r) = m.restarts[kind].failures, m.restarts[kind].refusals
	}
	*u.Failures.Of(host.Disk) = m.diskFailures.Load()
	if m.cpu != nil {
		*u.Holders.Of(host.CPU) = 1
	}
	m.mu.Unlock()
	var errs []error
	for _, p := range memory {
		rss, err := m.launch.procs.resident(p.Pid)
		if p.hasExited() || errors.Is(err, errNoProcess) {
			continue // ended just now; the next call reaps it
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*u.Bytes.Of(host.Memory) += rss
		*u.Holders.Of(host.Memory)++
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
		*u.Holders.Of(host.Disk), *u.Bytes.Of(host.Disk) = files, bytes
	}
	return u, errors.Join(errs...)
}

// CPUTime is the CPU time of every holder process since Open, as in
// Held.CPUTime. It is cheap, and never waits for anything else the
// manager does: the give-way watcher reads it four times a second while
// the burner runs.
func (m *Manager) CPUTime() (time.Duration, error) {
	if m.closed.Load() {
		return 0, errClosed
	}
	m.cpuMu.Lock()
	m.counted = slices.DeleteFunc(m.counted, func(p *holderProcess) bool {
		if !p.hasExited() {
			return false
		}
		final, _ := p.cpuTime(m.launch.procs) // reaped: no error
		m.ended += final
		return true
	})
	counted, total := slices.Clone(m.counted), m.ended
	m.cpuMu.Unlock()
	var errs []error
	for _, p := range counted {
		t, err := p.cpuTime(m.launch.procs)
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
