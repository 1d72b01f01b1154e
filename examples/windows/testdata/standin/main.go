//go:build windows

// Command standin stands in for cro-exporter.exe in the MSI that
// msi_wine_test.go installs under Wine: the real binary is no service
// there (svc.IsWindowsService is false under Wine) and would hold the
// host's memory. It appends its command line, as Windows gives it, to the
// file main.record names (set with -ldflags -X). Started with --recover,
// it appends "recover <command line>" and "scm <the service's state>"
// (the removal must recover once the service is stopped and before it is
// deleted), and exits 0. Otherwise it appends "service <command line>",
// runs as the service cro-exporter under the SCM until asked to stop, and
// appends "stopped".
package main

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// record is the file the stand-in appends to, a Windows path.
var record string

func main() {
	line := windows.UTF16PtrToString(windows.GetCommandLine())
	if slices.Contains(os.Args[1:], "--recover") {
		note("recover " + line)
		note("scm " + serviceState())
		return
	}
	note("service " + line)
	if err := svc.Run("cro-exporter", service{}); err != nil {
		note("error " + err.Error())
		os.Exit(1)
	}
}

// note appends a line to record.
func note(s string) {
	f, err := os.OpenFile(record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(2)
	}
	fmt.Fprintln(f, s)
	f.Close()
}

// serviceState is "stopped" if the SCM has the service cro-exporter
// stopped, else what it has.
func serviceState() string {
	m, err := mgr.Connect()
	if err != nil {
		return err.Error()
	}
	defer m.Disconnect()
	s, err := m.OpenService("cro-exporter")
	if err != nil {
		return err.Error()
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return err.Error()
	} else if st.State != svc.Stopped {
		return fmt.Sprintf("state %d", st.State)
	}
	return "stopped"
}

type service struct{}

func (service) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	s <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for c := range r {
		switch c.Cmd {
		case svc.Interrogate:
			s <- c.CurrentStatus
		case svc.Stop, svc.Shutdown:
			note("stopped")
			return false, 0
		}
	}
	return false, 0
}
