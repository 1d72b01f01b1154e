package holder

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// StoppedHolder is a holder process Recover (or Open) killed.
type StoppedHolder struct {
	Pid  int
	Kind Kind
}

// Report is what Recover did.
type Report struct {
	// Daemon is the pid of the cro-exporter daemon that was stopped, 0 when
	// none was running.
	Daemon int
	// Holders are the holder processes killed.
	Holders []StoppedHolder
	// FillDir holds the FillFiles fill files removed, which held FillBytes
	// bytes of allocated blocks.
	FillDir   string
	FillFiles int
	FillBytes int64
	// TempFiles are the temporary files removed from the state dir.
	TempFiles []string
	// Notes say what was left alone and why, such as a pid in the registry
	// that another process has taken, or a holder of another live daemon.
	Notes []string
	// Failures name what could not be stopped or removed, and why.
	Failures []string
}

// Failed tells whether something could not be stopped or removed: the
// --recover command exits 1 when it did.
func (r *Report) Failed() bool { return len(r.Failures) > 0 }

// Nothing tells whether there was nothing to stop or remove.
func (r *Report) Nothing() bool {
	return r.Daemon == 0 && len(r.Holders) == 0 && r.FillFiles == 0 && len(r.TempFiles) == 0 && len(r.Failures) == 0
}

// WriteTo writes the report for a person, a line per fact.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if r.Nothing() {
		b.WriteString("Nothing to recover: no cro-exporter daemon, holder process, fill file or temporary file found.\n")
	}
	if r.Daemon != 0 {
		fmt.Fprintf(&b, "Stopped the cro-exporter daemon (pid %d).\n", r.Daemon)
	}
	if len(r.Holders) > 0 {
		var hs []string
		for _, h := range r.Holders {
			hs = append(hs, fmt.Sprintf("%s (pid %d)", h.Kind, h.Pid))
		}
		fmt.Fprintf(&b, "Stopped %s: %s.\n", plural(len(hs), "holder process", "holder processes"), strings.Join(hs, ", "))
	}
	if r.FillFiles > 0 {
		fmt.Fprintf(&b, "Removed %s from %s, freeing %s.\n", plural(r.FillFiles, "fill file", "fill files"), r.FillDir, humanBytes(r.FillBytes))
	}
	if len(r.TempFiles) > 0 {
		fmt.Fprintf(&b, "Removed %s: %s.\n", plural(len(r.TempFiles), "temporary file", "temporary files"), strings.Join(r.TempFiles, ", "))
	}
	for _, s := range r.Notes {
		fmt.Fprintf(&b, "Note: %s.\n", s)
	}
	for _, s := range r.Failures {
		fmt.Fprintf(&b, "Could not remove: %s.\n", s)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// plural is "1 file" or "n files".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// humanBytes writes n in binary units, and exactly when it is not a whole
// number of them.
func humanBytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1024 {
		return plural(int(n), "byte", "bytes")
	}
	v, u := float64(n)/1024, 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", v, units[u], n)
}
