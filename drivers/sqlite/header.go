package sqlite

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// headerSize is the size of the SQLite database file header.
const headerSize = 100

// diagnoseHeader looks at the file header of a database SQLite refused to
// read and says what is visibly wrong with it, or "" when nothing is: the
// magic string is missing, the page size is impossible, or the file is
// shorter than the page count the header records (a truncated copy). It
// reads the file directly (read-only), so it works when SQLite cannot.
func diagnoseHeader(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	var h [headerSize]byte
	n, err := io.ReadFull(f, h[:])
	if err != nil && n < 16 {
		return fmt.Sprintf("the file is only %d bytes long, shorter than the %d-byte SQLite header", st.Size(), headerSize)
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return `the file does not start with the SQLite header "SQLite format 3"`
	}
	if n < headerSize {
		return fmt.Sprintf("the file is only %d bytes long, shorter than the %d-byte SQLite header", st.Size(), headerSize)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Sprintf("the header gives an impossible page size (%d)", pageSize)
	}
	// The in-header page count is valid when the change counter matches
	// the version-valid-for number (SQLite ≥3.7.0 writes both).
	pages := int64(binary.BigEndian.Uint32(h[28:]))
	if pages > 0 && binary.BigEndian.Uint32(h[24:]) == binary.BigEndian.Uint32(h[92:]) && st.Size() < pages*pageSize {
		return fmt.Sprintf("the file is %d bytes long, but its header says %d pages of %d bytes (%d bytes): it was truncated", st.Size(), pages, pageSize, pages*pageSize)
	}
	return ""
}
