//go:build !linux

package holder

import (
	"errors"
	"fmt"
	"io"
)

// RunCPU is the CPU holder process; it needs Linux.
func RunCPU(duty float64, in io.Reader, out io.Writer) error {
	return fmt.Errorf("CPU holder: %w", errors.ErrUnsupported)
}
