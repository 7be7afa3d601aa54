package vmtest

import (
	"fmt"
	"os"
)

// WriteMarkerBootSector writes an MBR boot sector to the start of img that
// prints marker (and CR LF) on COM1 and halts: a stand-in for an installed
// OS when a test checks that the firmware or iPXE booted the local disk.
func WriteMarkerBootSector(img, marker string) error {
	code := []byte{
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8
		0xBE, 0x12, 0x7C, // mov si, 0x7c12 (msg)
		0xAC,       // lodsb
		0x84, 0xC0, // test al, al
		0x74, 0x03, // jz done
		0xEE,       // out dx, al
		0xEB, 0xF8, // jmp lodsb
		0xFA,       // done: cli
		0xF4,       // hlt
		0xEB, 0xFD, // jmp hlt
	}
	msg := append([]byte(marker), '\r', '\n', 0)
	if len(code)+len(msg) > 440 {
		return fmt.Errorf("vmtest: boot sector marker %q too long", marker)
	}
	sector := make([]byte, 512)
	copy(sector, code)
	copy(sector[len(code):], msg)
	sector[510], sector[511] = 0x55, 0xAA
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(sector, 0); err != nil {
		return fmt.Errorf("vmtest: write boot sector to %s: %w", img, err)
	}
	return f.Sync()
}
