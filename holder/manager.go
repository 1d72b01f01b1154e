package holder

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Kind is the kind of a holder process.
type Kind string

// The kinds of holder processes; disk fill is files, not processes.
const (
	KindMemory Kind = "memory"
	KindCPU    Kind = "cpu"
)

// ErrClosed is returned by the methods of a Manager after Close.
var ErrClosed = errors.New("holder manager is closed")

// Config is what a Manager, and Recover, work with.
type Config struct {
	Binary   string // executable started as holders; "" means /proc/self/exe
	StateDir string // registry and lock
	FillDir  string // disk fill files; "" means no disk fill
	Chunk    int64  // largest memory holder, <= MaxChunk; 0 means MaxChunk
	Proc     string // procfs root for our own holders, "" means /proc
	Logger   *slog.Logger
}

// Desired is the load the holders should add.
type Desired struct {
	CPU          float64 // share of the whole machine, 0..1
	Memory, Disk int64   // bytes
}

// Usage is what the holders add right now, measured: the CPU holder's time
// from /proc/<pid>/stat, the memory holders' VmRSS from /proc/<pid>/status,
// the fill files' allocated blocks.
type Usage struct {
	CPUTime       time.Duration // CPU time of the CPU holders since Open, a counter
	Memory, Disk  int64         // bytes
	CPUHolders    int
	MemoryHolders int
	DiskFiles     int
}

// Manager starts, resizes and stops the holders of one host, keeps their
// registry, and holds the state dir's lock from Open to Close. Its methods
// are safe for concurrent use; they run one at a time.
type Manager struct {
	cfg    Config
	logger *slog.Logger
	launch *launcher
	lock   *stateLock
	fill   *Fill // nil without a fill dir

	mu     sync.Mutex
	closed bool
	memory []*holderProcess // in start order, filled or filling
	// filling counts the goroutines that wait for new memory holders to
	// fill; Close waits for them.
	filling sync.WaitGroup
	cpu     *holderProcess
	// cpuDone is the CPU time of the CPU holders that have ended, and
	// cpuSeen the running one's at its last reading: Usage adds them up.
	cpuDone, cpuSeen time.Duration
}

// resolved is a Config with its defaults filled in.
type resolved struct {
	Config
	argv0 string // the holders' argv[0]
	owner string // StateDir, absolute with symlinks resolved: ownerEnv's value
}

// resolve checks cfg and fills in its defaults.
func resolve(cfg Config) (resolved, error) {
	r := resolved{Config: cfg}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Proc == "" {
		r.Proc = "/proc"
	}
	if r.StateDir == "" {
		return r, errors.New("holder manager: no state dir")
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
	lock, err := lockStateDir(r.StateDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:    r.Config,
		logger: r.Logger,
		launch: &launcher{binary: r.Binary, argv0: r.argv0, owner: r.owner, proc: r.Proc, logger: r.Logger},
		lock:   lock,
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
		if m.fill, err = OpenFill(r.FillDir); err != nil {
			return fail(err)
		}
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
// the errors are joined.
//
// Memory is held as d.Memory/Chunk full chunks plus one holder for the
// remainder. Holders of the sizes wanted are kept (the oldest first), the
// others stopped, and the missing sizes started. Apply stops before it
// starts, so holders never hold more than the larger of the old and the new
// amount: a change of less than a chunk replaces the remainder holder and
// dips by its size for the second or so that takes. Apply does not wait
// for new holders to fill their memory (up to 1.5 s for 1 GiB, warm): they
// count, in Usage, for what they have made resident so far, a later Apply
// may stop them while they fill, and one that fails to fill is logged and
// dropped.
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
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.reap()
	return errors.Join(m.applyMemory(want), m.applyCPU(d.CPU), m.applyDisk(d.Disk))
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

// applyMemory brings the memory holders to the sizes wanted: it stops the
// ones in excess, and starts new ones without waiting for them to fill.
func (m *Manager) applyMemory(want []int64) error {
	have := make([]int64, len(m.memory))
	for i, p := range m.memory {
		have[i] = p.Size
	}
	stopIdx, start := reconcileChunks(have, want)
	var errs []error
	if len(stopIdx) > 0 {
		var stopping []*holderProcess
		for _, i := range stopIdx { // highest index first
			stopping = append(stopping, m.memory[i])
			m.memory = slices.Delete(m.memory, i, i+1)
		}
		errs = append(errs, stopAll(stopping))
		errs = append(errs, m.save())
	}
	if len(start) == 0 {
		return errors.Join(errs...)
	}
	for _, size := range start {
		p, err := m.launch.start(KindMemory, size, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.memory = append(m.memory, p)
		m.filling.Go(func() { m.awaitFilled(p) })
	}
	errs = append(errs, m.save())
	return errors.Join(errs...)
}

// awaitFilled waits for a new memory holder's ready line outside the lock:
// filling a chunk takes up to seconds, and a release must never wait for
// it. A holder that fails to fill is killed and dropped.
func (m *Manager) awaitFilled(p *holderProcess) {
	err := p.waitReady(readyTimeout)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil || !slices.Contains(m.memory, p) {
		return // filled, or stopped meanwhile: the error tells nothing
	}
	m.logger.Warn("Memory holder failed to fill", "pid", p.Pid, "size", p.Size, "err", err)
	p.kill()
	m.memory = slices.DeleteFunc(m.memory, func(q *holderProcess) bool { return q == p })
	if err := m.save(); err != nil {
		m.logger.Error("Saving the holder registry", "err", err)
	}
}

// applyCPU starts, changes or stops the CPU holder.
func (m *Manager) applyCPU(duty float64) error {
	switch {
	case duty == 0 && m.cpu == nil:
		return nil
	case duty == 0:
		m.endCPU()
		err := m.cpu.stop()
		m.cpu = nil
		return errors.Join(err, m.save())
	case m.cpu == nil:
		p, err := m.launch.start(KindCPU, 0, duty)
		if err != nil {
			return err
		}
		m.cpu = p
		if err := m.save(); err != nil {
			return err
		}
		if err := p.waitReady(readyTimeout); err != nil {
			p.kill()
			m.cpu = nil
			return errors.Join(err, m.save())
		}
		return nil
	case duty == m.cpu.Duty:
		return nil
	}
	if err := m.cpu.setDuty(duty); err != nil {
		// In an unknown state: gone, so the next Apply starts afresh.
		m.cpu.kill()
		m.cpu = nil
		return errors.Join(err, m.save())
	}
	return m.save()
}

// applyDisk resizes the fill files.
func (m *Manager) applyDisk(total int64) error {
	if m.fill == nil {
		return nil
	}
	return m.fill.Resize(total)
}

// reap drops the holders that ended by themselves, such as a memory holder
// the OOM killer took, and logs why they ended.
func (m *Manager) reap() {
	changed := false
	m.memory = slices.DeleteFunc(m.memory, func(p *holderProcess) bool {
		if !p.hasExited() {
			return false
		}
		m.logger.Warn("Memory holder ended by itself", "pid", p.Pid, "size", p.Size, "err", p.waitErr)
		changed = true
		return true
	})
	if m.cpu != nil && m.cpu.hasExited() {
		m.logger.Warn("CPU holder ended by itself", "pid", m.cpu.Pid, "err", m.cpu.waitErr)
		m.endCPU()
		m.cpu = nil
		changed = true
	}
	if changed {
		if err := m.save(); err != nil {
			m.logger.Error("Saving the holder registry", "err", err)
		}
	}
}

// save writes the registry with the holders running now.
func (m *Manager) save() error {
	var entries []holderEntry
	for _, p := range m.memory {
		entries = append(entries, entryOf(p))
	}
	if m.cpu != nil {
		entries = append(entries, entryOf(m.cpu))
	}
	return saveRegistry(m.cfg.StateDir, entries)
}

// stopAll stops holders concurrently and joins their errors.
func stopAll(ps []*holderProcess) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Usage measures what the holders add now. CPU is the CPU holder's
// utime+stime since the previous call (or since it started) over the time
// passed times the number of CPUs. A holder that ended by itself counts for
// nothing and is dropped.
func (m *Manager) Usage() (Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Usage{}, ErrClosed
	}
	m.reap()
	var u Usage
	var errs []error
	for _, p := range m.memory {
		rss, err := readRSS(m.launch.proc, p.Pid)
		if errors.Is(err, errNoProcess) {
			continue // ended just now; the next call reaps it
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u.Memory += rss
		u.MemoryHolders++
	}
	if m.cpu != nil {
		switch err := m.readCPU(); {
		case errors.Is(err, errNoProcess):
		case err != nil:
			errs = append(errs, err)
		default:
			u.CPUHolders = 1
		}
	}
	u.CPUTime = m.cpuDone + m.cpuSeen
	if m.fill != nil {
		files, bytes, err := m.fill.Usage()
		if err != nil {
			errs = append(errs, err)
		}
		u.DiskFiles, u.Disk = files, bytes
	}
	return u, errors.Join(errs...)
}

// readCPU reads the running CPU holder's utime+stime into cpuSeen.
func (m *Manager) readCPU() error {
	st, err := readProcStat(m.launch.proc, m.cpu.Pid)
	if err != nil {
		return err
	}
	m.cpuSeen = time.Duration(st.UTime+st.STime) * time.Second / userHZ
	return nil
}

// endCPU counts the CPU holder's time as done, read once more if it still
// runs, before it is stopped or dropped.
func (m *Manager) endCPU() {
	m.readCPU() // an ended holder keeps its last reading
	m.cpuDone += m.cpuSeen
	m.cpuSeen = 0
}

// Close stops every holder, removes every fill file, empties the registry
// and releases the lock. Calling it again does nothing.
func (m *Manager) Close() error {
	defer m.filling.Wait() // after the unlock: they take the lock to end
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	all := m.memory
	if m.cpu != nil {
		m.endCPU()
		all = append(all, m.cpu)
	}
	errs := []error{stopAll(all)}
	m.memory, m.cpu = nil, nil
	if m.fill != nil {
		if _, _, err := m.fill.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.save(), m.lock.release())
	return errors.Join(errs...)
}
