package holder

import "sync"

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
