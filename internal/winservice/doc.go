// Package winservice runs cro-exporter as a Windows service and logs to the
// Windows event log: Run answers the Service Control Manager (SCM) when it
// started the process, and runs in the foreground otherwise; NewHandler is
// a log/slog handler over the event log, whose source the MSI registers.
// Its tests run under Wine (tools/wine). On Linux the package is empty.
package winservice

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
