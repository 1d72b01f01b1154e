// Package winservice runs cro-exporter as a Windows service and logs to the
// Windows event log: Run answers the Service Control Manager (SCM) when it
// started the process, and runs in the foreground otherwise; NewHandler is
// a log/slog handler over the event log; InstallSource and RemoveSource
// register and unregister the event source. It lives apart from
// cmd/cro-exporter, which does not build for Windows yet (WINDOWS.md), so
// that it builds and is tested under Wine on its own. On Linux the package
// is empty.
package winservice

import (
	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)
