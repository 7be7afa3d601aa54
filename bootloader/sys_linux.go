package bootloader

import "syscall"

// syncFS flushes every filesystem (sync(2)).
func syncFS() { syscall.Sync() }
