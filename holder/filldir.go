package holder

import (
	"errors"
	"io/fs"
	"os"
)

// take adopts the fill dir, or makes it when it is missing and create is
// set, locks it and holds it, and returns a new open file of it; nil with
// no error when it is missing and create is not set. With strict, a dir
// holding anything but fill files of ours and the marker is refused
// (openFill); without, it is taken (--recover, which removes only what is
// ours). How a dir is locked and held is each system's (filldir_*.go).
func (f *fillDir) take(create, strict bool) (*os.File, error) {
	d, st, err := openFillDir(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		return f.make()
	}
	if err != nil {
		return nil, err
	}
	return f.adopt(d, st, strict)
}
