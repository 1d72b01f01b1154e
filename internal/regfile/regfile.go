// Package regfile opens and reads every file cro-exporter reads, those it
// is pointed at (the web config and the files it names, a --trace, a procfs
// tree's files) and those of its state dir, the same way: never waiting on
// a FIFO, refusing whatever is not a regular file before it is opened (so
// that opening a device has no effect), and never reading more than a cap,
// whatever the file's size says. A FIFO that blocked the start for good, or
// /dev/zero that grew memory until the host ran out, is a one-line error.
package regfile

import (
	"fmt"
	"io"
	"os"

	// The build for another GOOS stops there, with one message.
	_ "github.com/cro-exporter/cro-exporter/internal/platform"
)

// Error is a file refused, with its path and the problem: "PATH is a
// FIFO, not a regular file".
type Error struct{ Path, Problem string }

func (e *Error) Error() string { return e.Path + " " + e.Problem }

// TooLarge is the error for the file path, larger than max bytes.
func TooLarge(path string, max int64) error {
	return &Error{path, fmt.Sprintf("is larger than %d bytes", max)}
}

// ReadAll reads f, the file path, whole, reading at most max+1 bytes: a
// file that holds more than max, whatever its size said, is an error.
func ReadAll(f *os.File, path string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, TooLarge(path, max)
	}
	return data, nil
}

// ReadFile returns the content of path, a regular file (a symlink to one
// is followed) of at most max bytes.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path, os.O_RDONLY, Regular(path, max))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, path, max)
}
