// Package sys holds the thin real adapters to the operating system that the
// imprint packages declare as small interfaces: running programs (Exec) and
// touching block devices through sysfs, /proc and ioctls without udev
// (Devices). Every root path is injectable, so the parsing is unit-tested
// against fixture trees.
package sys
