//go:build unix

package filewatch

import (
	"os"
	"syscall"
)

// inode is fi's inode number, so that a file replaced by rename counts as
// changed even with the same size and modification time.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
