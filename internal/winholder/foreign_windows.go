package winholder

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// Process is a process that is not our child, held through a handle, so
// that nothing done to it can reach a later process that reused its pid.
type Process struct {
	Pid   int
	Start uint64 // creation time, as Times returns it
	Image string // the full path of its executable
	h     windows.Handle
}

// Open opens pid to tell of it, end it and wait for it. A pid no process
// has, or one whose process has ended, is ErrNoProcess.
func Open(pid int) (*Process, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.PROCESS_TERMINATE|windows.SYNCHRONIZE, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: OpenProcess: %w", pid, err)
	}
	p := &Process{Pid: pid, h: h}
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &creation, &exit, &kernel, &user); err != nil {
		p.Close()
		return nil, fmt.Errorf("pid %d: GetProcessTimes: %w", pid, err)
	}
	if filetime(exit) != 0 {
		p.Close()
		return nil, fmt.Errorf("pid %d: ended: %w", pid, ErrNoProcess)
	}
	p.Start = filetime(creation)
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		p.Close()
		return nil, fmt.Errorf("pid %d: QueryFullProcessImageName: %w", pid, err)
	}
	p.Image = windows.UTF16ToString(buf[:n])
	return p, nil
}

// Kill ends the process (TerminateProcess) and waits up to timeout for it
// to be gone. One that has ended already is no error.
func (p *Process) Kill(timeout time.Duration) error {
	if err := windows.TerminateProcess(p.h, 1); err != nil && !p.Wait(0) {
		return fmt.Errorf("pid %d: TerminateProcess: %w", p.Pid, err)
	}
	if !p.Wait(timeout) {
		return fmt.Errorf("pid %d still runs %s after TerminateProcess", p.Pid, timeout)
	}
	return nil
}

// Wait waits up to timeout for the process to end, and tells whether it
// did.
func (p *Process) Wait(timeout time.Duration) bool {
	ev, err := windows.WaitForSingleObject(p.h, uint32(timeout.Milliseconds()))
	return err == nil && ev == windows.WAIT_OBJECT_0
}

func (p *Process) Close() { windows.CloseHandle(p.h) }

// ServicePid is the pid of the service name while it runs; 0 when it is
// not installed or not running.
func ServicePid(name string) (int, error) {
	m, err := mgr.Connect()
	if err != nil {
		return 0, fmt.Errorf("service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("service %s: %w", name, err)
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return 0, fmt.Errorf("service %s: %w", name, err)
	}
	if st.State == svc.Stopped {
		return 0, nil
	}
	return int(st.ProcessId), nil
}

// StopService asks the service name to stop, without waiting.
func StopService(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	defer s.Close()
	if _, err := s.Control(svc.Stop); err != nil {
		return fmt.Errorf("stopping service %s: %w", name, err)
	}
	return nil
}

// ServiceName is the name cro-exporter's service is registered under.
const ServiceName = "cro-exporter"
