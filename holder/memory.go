package holder

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// MaxChunk is the largest memory holder, in bytes (1 GiB). More memory is
// held by several holders, so that each can be given back on its own.
const MaxChunk = 1 << 30

// CheckMemorySize returns an error unless size, in bytes, is one a memory
// holder can hold: above 0 and at most MaxChunk.
func CheckMemorySize(size int64) error {
	if size <= 0 || size > MaxChunk {
		return fmt.Errorf("a memory holder's size must be above 0 and at most %dGiB (%d bytes)", MaxChunk>>30, MaxChunk)
	}
	return nil
}

// RunMemory is the memory holder process: it makes itself the first whose
// memory the system takes back (becomeExpendable), holds size bytes of ballast
// outside the Go heap, every page resident with non-zero content, prints
// "ready <resident bytes>" on out, and holds the memory until in ends or
// says "stop" (nil). Any other line on in is an error naming it.
func RunMemory(size int64, in io.Reader, out io.Writer) error {
	if err := CheckMemorySize(size); err != nil {
		return err
	}
	if err := becomeExpendable(); err != nil {
		return err
	}
	b, err := holdMemory(size)
	if err != nil {
		return err
	}
	defer b.release()
	resident, err := b.resident()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "ready %d\n", resident); err != nil {
		return fmt.Errorf("writing the ready line: %w", err)
	}
	return awaitStop(in)
}

// ballast is memory a memory holder holds outside the Go heap: one per
// operating system, so that another is a new file (memory_linux.go has
// Linux's). holdMemory makes it, every page resident.
type ballast interface {
	// resident returns the holder process's resident memory, in bytes.
	resident() (int64, error)
	release()
}

// readCommands hands each line of a holder's stdin, trimmed of surrounding
// space, to handle until handle says it is done or returns an error, or in
// ends (nil). A holder's parent only ever writes whole commands, so an empty
// line is no command: handle sees it and rejects it like any other unknown
// line.
func readCommands(in io.Reader, handle func(line string) (done bool, err error)) error {
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		done, err := handle(strings.TrimSpace(lines.Text()))
		if err != nil || done {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("reading commands: %w", err)
	}
	return nil // the parent closed the pipe, or died
}

// awaitStop reads a memory holder's stdin until it ends or says "stop". Any
// other line, the empty line included, is an error that names it.
func awaitStop(in io.Reader) error {
	return readCommands(in, func(line string) (bool, error) {
		if line != "stop" {
			return false, fmt.Errorf("unknown command %q (a memory holder knows only \"stop\")", line)
		}
		return true, nil
	})
}
