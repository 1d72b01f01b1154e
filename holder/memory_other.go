//go:build !linux

package holder

import (
	"errors"
	"fmt"
	"io"
)

// RunMemory is the memory holder process; it needs Linux.
func RunMemory(size int64, in io.Reader, out io.Writer) error {
	return fmt.Errorf("memory holder: %w", errors.ErrUnsupported)
}
