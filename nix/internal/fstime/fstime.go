// Package fstime sets the times of the files steps write into layers, so
// that a layer's bytes do not depend on when it was made.
package fstime

import (
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Set sets a path's access and modification times without following a
// symlink.
func Set(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// SetUpTo sets the times of dir and of every directory between it and stop
// (not included): the directories a step creates around what it writes.
func SetUpTo(dir, stop string, t time.Time) error {
	for d := dir; d != stop && len(d) > len(stop); d = filepath.Dir(d) {
		if err := Set(d, t); err != nil {
			return err
		}
	}
	return nil
}
