//go:build !unix

package filewatch

import "os"

// inode is 0 where the platform has no inode numbers: changes are noticed
// by modification time and size alone.
func inode(os.FileInfo) uint64 { return 0 }
