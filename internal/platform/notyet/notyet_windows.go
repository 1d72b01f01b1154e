package notyet

// This line is the Windows build's one error: the compiler prints the
// string.
var _ int = "cro-exporter is not ported to Windows yet beyond internal/host and internal/statefile: set GOOS=linux"
