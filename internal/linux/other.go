//go:build !linux

// cro-exporter reads /proc and uses Linux system calls throughout: building
// it for another system stops at this import, with its path as the message.
package linux

import _ "cro-exporter builds and runs on Linux only"
