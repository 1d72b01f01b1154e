// Package statefile writes the files of the state dir so that neither a
// crash nor a power cut leaves one half written, reads them strictly, and
// moves a corrupt one aside rather than deleting it. The averages (controller) and the holder
// registry (holder) both use it.
package statefile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Write replaces path with data, all or nothing: into path.tmp, synced,
// renamed over path, and the dir synced to keep the rename. One daemon per
// state dir (the lock) writes it, so the fixed temporary name is safe, and
// a crash leaves at most one behind, which the next write replaces.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the entries of dir, such as a rename into it, durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MoveAside renames path to path.corrupt-<unix time of now>, with a suffix
// should that name be taken, so that no earlier corrupt file is overwritten,
// and returns the new name.
func MoveAside(path string, now time.Time) (string, error) {
	aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	for i := 1; ; i++ {
		// Any error but "exists" is left for the rename to report.
		if _, err := os.Lstat(aside); err != nil {
			break
		}
		aside = fmt.Sprintf("%s.corrupt-%d.%d", path, now.Unix(), i)
	}
	return aside, os.Rename(path, aside)
}

// Decode parses data, a state file of the given format version, into v
// strictly: another version, bad JSON, or a field v lacks (a misspelt one
// would otherwise read as zero) is an error.
func Decode(data []byte, version int, v any) error {
	// The version first, so that a later format is reported as such and
	// not as whatever field it added.
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("parsing JSON: %w", err)
	}
	if head.Version != version {
		return fmt.Errorf("version %d, want %d", head.Version, version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("parsing JSON: %w", err)
	}
	return nil
}
