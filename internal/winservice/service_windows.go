package winservice

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/windows/svc"
)

// stopWaitHint is how long, in milliseconds, the SCM is told a stop may
// take: the daemon stops its holders and removes its fill files on the way
// out, as systemd's TimeoutStopSec=30s allows on Linux.
const stopWaitHint = 30_000

// isService is svc.IsWindowsService, which asks whether our parent is
// services.exe in session 0. A test under Wine sets it: Wine's
// services.exe runs in session 1, as every process there does.
var isService = svc.IsWindowsService

// Run runs run and returns its exit status. When the SCM started the
// process, it runs as the service name (the name the service is installed
// under): service is true, and ctx ends when the SCM asks for a stop or the
// system shuts down; the SCM records a status other than 0 as the
// service-specific exit code (sc query shows it). Otherwise service is
// false and ctx ends at Ctrl-C or Ctrl-Break (os.Interrupt), or when the
// console closes, the user logs off or the system shuts down
// (syscall.SIGTERM). The error is that of finding out which, or of the
// SCM's dispatcher; the status is then meaningless.
func Run(name string, run func(ctx context.Context, service bool) int) (int, error) {
	service, err := isService()
	if err != nil {
		return 0, fmt.Errorf("finding out whether the SCM started us: %w", err)
	}
	if !service {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, false), nil
	}
	h := &scmHandler{run: func(ctx context.Context) int { return run(ctx, true) }}
	if err := svc.Run(name, h); err != nil {
		return 0, fmt.Errorf("running as the service %s: %w", name, err)
	}
	return h.code, nil
}

// scmHandler is the service: svc.Run calls Execute on a goroutine of its own,
// passes it the SCM's control requests on r and the status it sends on s
// to the SCM, and reports Stopped, with the exit code, once it returns.
type scmHandler struct {
	run  func(ctx context.Context) int
	code int // run's status, once Execute has returned
}

func (h *scmHandler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	status := svc.Status{State: svc.StartPending}
	s <- status
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx) }()
	// Running at once, not once the daemon listens: a stop must be
	// accepted while it starts, and the daemon ends its start at once
	// when ctx ends. Pause is not accepted: holding less for a while is
	// a stop.
	status = svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	s <- status
	for {
		select {
		case h.code = <-done:
			if status.State != svc.StopPending {
				// run ended of itself, a failure most likely: the
				// SCM hears it stop, not crash.
				s <- svc.Status{State: svc.StopPending}
			}
			return h.code != 0, uint32(h.code)
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				s <- status
			case svc.Stop, svc.Shutdown:
				if status.State != svc.StopPending {
					status = svc.Status{State: svc.StopPending, WaitHint: stopWaitHint}
					s <- status
					cancel()
				}
			}
			// No other request comes: the SCM sends only what
			// Accepts lists, and Interrogate. Requests keep being
			// read while run stops, or the SCM's next one (an
			// Interrogate, a Shutdown after a Stop) would hang.
		}
	}
}
