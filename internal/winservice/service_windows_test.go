package winservice

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// childArg, as the test binary's first argument, makes it the service of
// TestRealService: os.Args then holds the service's name and a file to
// write what it sees to.
const childArg = "winservice-child"

// childExit is the child's exit status, which the SCM must report.
const childExit = 3

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == childArg {
		os.Exit(serviceChild(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// serviceChild runs as the service name under Run, writing to out
// "started <service>" once run starts and "stopped" once its ctx ends.
func serviceChild(name, out string) int {
	// Wine's services.exe runs in session 1, so svc.IsWindowsService
	// says no under Wine: the SCM started us, TestRealService knows.
	isService = func() (bool, error) { return true, nil }
	code, err := Run(name, func(ctx context.Context, service bool) int {
		os.WriteFile(out, fmt.Appendf(nil, "started %t\n", service), 0o600)
		<-ctx.Done()
		f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintln(f, "stopped")
		f.Close()
		return childExit
	})
	if err != nil {
		os.WriteFile(out, []byte(err.Error()), 0o600)
		return 1
	}
	return code
}

// execute runs h.Execute on fake channels, as svc.Run would, and returns
// them and a channel that yields Execute's result once it returns.
func execute(h *scmHandler) (chan<- svc.ChangeRequest, <-chan svc.Status, <-chan [2]any) {
	r := make(chan svc.ChangeRequest)
	s := make(chan svc.Status, 16)
	done := make(chan [2]any, 1)
	go func() {
		ssec, code := h.Execute(nil, r, s)
		done <- [2]any{ssec, code}
	}()
	return r, s, done
}

// next returns the next status sent, failing after a second without one.
func next(t *testing.T, s <-chan svc.Status) svc.Status {
	t.Helper()
	select {
	case st := <-s:
		return st
	case <-time.After(time.Second):
		t.Fatal("no status sent within 1s")
		return svc.Status{}
	}
}

// wait returns Execute's result, failing after a second without one.
func wait(t *testing.T, done <-chan [2]any) [2]any {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(time.Second):
		t.Fatal("Execute did not return within 1s")
		return [2]any{}
	}
}

var (
	startPending = svc.Status{State: svc.StartPending}
	running      = svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	stopPending  = svc.Status{State: svc.StopPending, WaitHint: stopWaitHint}
)

func TestStopAndShutdownEndRun(t *testing.T) {
	for name, cmd := range map[string]svc.Cmd{"Stop": svc.Stop, "Shutdown": svc.Shutdown} {
		t.Run(name, func(t *testing.T) {
			ended := make(chan error, 1)
			r, s, done := execute(&scmHandler{run: func(ctx context.Context) int {
				<-ctx.Done()
				ended <- ctx.Err()
				return 0
			}})
			for _, want := range []svc.Status{startPending, running} {
				if got := next(t, s); got != want {
					t.Fatalf("status %+v, want %+v", got, want)
				}
			}
			r <- svc.ChangeRequest{Cmd: cmd}
			if got := next(t, s); got != stopPending {
				t.Fatalf("after %s: status %+v, want %+v", name, got, stopPending)
			}
			if err := <-ended; err != context.Canceled {
				t.Errorf("run's ctx: %v, want %v", err, context.Canceled)
			}
			if res := wait(t, done); res != [2]any{false, uint32(0)} {
				t.Errorf("Execute returned %v, want [false 0] (no error)", res)
			}
			if len(s) != 0 {
				t.Errorf("a status after StopPending: %+v", <-s)
			}
		})
	}
}

// TestInterrogate: Interrogate is answered with the status last sent,
// Running and then StopPending, whatever the request says it is; a second
// Stop while stopping sends nothing; a stop waits for run to end.
func TestInterrogate(t *testing.T) {
	release := make(chan struct{})
	r, s, done := execute(&scmHandler{run: func(ctx context.Context) int {
		<-ctx.Done()
		<-release
		return 0
	}})
	next(t, s)
	next(t, s)
	r <- svc.ChangeRequest{Cmd: svc.Interrogate, CurrentStatus: svc.Status{State: svc.Paused}}
	if got := next(t, s); got != running {
		t.Fatalf("Interrogate while running: %+v, want %+v", got, running)
	}
	r <- svc.ChangeRequest{Cmd: svc.Stop}
	if got := next(t, s); got != stopPending {
		t.Fatalf("status %+v, want %+v", got, stopPending)
	}
	r <- svc.ChangeRequest{Cmd: svc.Stop}
	r <- svc.ChangeRequest{Cmd: svc.Interrogate}
	if got := next(t, s); got != stopPending {
		t.Fatalf("Interrogate while stopping: %+v, want %+v", got, stopPending)
	}
	select {
	case res := <-done:
		t.Fatalf("Execute returned %v before run ended", res)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if res := wait(t, done); res != [2]any{false, uint32(0)} {
		t.Errorf("Execute returned %v, want [false 0]", res)
	}
}

// TestRunFails: run that ends of itself, with a status other than 0, is
// reported as stopping, and its status as the service-specific exit code.
func TestRunFails(t *testing.T) {
	h := &scmHandler{run: func(context.Context) int { return 2 }}
	_, s, done := execute(h)
	for _, want := range []svc.Status{startPending, running, {State: svc.StopPending}} {
		if got := next(t, s); got != want {
			t.Fatalf("status %+v, want %+v", got, want)
		}
	}
	if res := wait(t, done); res != [2]any{true, uint32(2)} {
		t.Errorf("Execute returned %v, want [true 2]", res)
	}
	if h.code != 2 {
		t.Errorf("code %d, want 2", h.code)
	}
}

// TestRunInForeground: go test is no service; run's status comes back,
// and its ctx is live.
func TestRunInForeground(t *testing.T) {
	code, err := Run("unused", func(ctx context.Context, service bool) int {
		if service {
			t.Error("run as a service under go test")
		}
		if ctx.Err() != nil {
			t.Errorf("ctx ended at the start: %v", ctx.Err())
		}
		return 5
	})
	if code != 5 || err != nil {
		t.Errorf("Run = %d, %v; want 5, nil", code, err)
	}
}

// TestRealService installs the test binary as a service with Wine's (or
// Windows') SCM, starts it, stops it, and checks what the SCM and the
// service saw: Running, then Stopped with the service-specific exit code.
func TestRealService(t *testing.T) {
	m, err := mgr.Connect()
	if err != nil {
		t.Fatalf("connecting to the SCM: %v", err)
	}
	defer m.Disconnect()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp("", "winservice-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	defer os.Remove(out.Name())
	name := "cro-winservice-test-" + strconv.Itoa(os.Getpid())
	s, err := m.CreateService(name, exe, mgr.Config{StartType: mgr.StartManual}, childArg, name, out.Name())
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	defer func() {
		s.Control(svc.Stop)
		if err := s.Delete(); err != nil {
			t.Errorf("deleting the service %s: %v", name, err)
		}
		s.Close()
	}()
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := waitState(t, s, svc.Running)
	if st.Accepts != svc.AcceptStop|svc.AcceptShutdown {
		t.Errorf("accepts %#x, want stop and shutdown", st.Accepts)
	}
	// Running is reported before run starts: wait for it to write.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(out.Name()); len(b) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if _, err := s.Control(svc.Stop); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st = waitState(t, s, svc.Stopped)
	if st.Win32ExitCode != uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR) || st.ServiceSpecificExitCode != childExit {
		t.Errorf("exit codes: Win32 %d, service-specific %d; want %d, %d",
			st.Win32ExitCode, st.ServiceSpecificExitCode, windows.ERROR_SERVICE_SPECIFIC_ERROR, childExit)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(string(b), "\r", ""); got != "started true\nstopped\n" {
		t.Errorf("the service wrote %q, want %q", got, "started true\nstopped\n")
	}
}

// waitState polls s until it is in state, for at most 10 s.
func waitState(t *testing.T, s *mgr.Service, state svc.State) svc.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Query()
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %d after 10s, want %d", st.State, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
