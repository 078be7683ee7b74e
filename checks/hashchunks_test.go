package checks

import (
	"errors"
	"fmt"
	"testing"
)

func TestKeyText(t *testing.T) {
	numeric := func(i int) bool { return i == 0 || i == 2 }
	for _, tc := range []struct {
		vals []string
		want string
	}{
		{[]string{"42", "42", "1.50"}, `[42,"42",1.50]`},
		{[]string{"007", "x", "1e3"}, `["007","x",1e3]`}, // not a JSON number: kept as text
		{[]string{"-1", `a"b`, "NaN"}, `[-1,"a\"b","NaN"]`},
	} {
		k := KeyFromText(tc.vals, numeric)
		if got := k.raw(); got != tc.want {
			t.Errorf("KeyFromText(%q) = %s, want %s", tc.vals, got, tc.want)
		}
		back, err := k.Texts(len(tc.vals))
		if err != nil || fmt.Sprint(back) != fmt.Sprint(tc.vals) {
			t.Errorf("Texts of %s = %q, %v; want %q", k.raw(), back, err, tc.vals)
		}
	}
	if _, err := KeyFromText([]string{"1"}, numeric).Texts(2); err == nil {
		t.Error("Texts with the wrong number of columns: no error")
	}
	if _, err := (Key{[]byte("true")}).Texts(1); err == nil {
		t.Error("Texts of a JSON boolean: no error")
	}
}

// raw renders a key as a JSON array, for the test.
func (k Key) raw() string {
	s := "["
	for i, v := range k {
		if i > 0 {
			s += ","
		}
		s += string(v)
	}
	return s + "]"
}

func TestHashChunks(t *testing.T) {
	// A table of keys 1..10; bound returns the key rows-many rows after
	// r.Lower (nil past the end), hash counts the rows of the range.
	keys := func(n int) Key { return KeyFromText([]string{fmt.Sprint(n)}, func(int) bool { return true }) }
	num := func(k Key) int {
		if k == nil {
			return -1
		}
		var n int
		fmt.Sscan(string(k[0]), &n)
		return n
	}
	bound := func(r KeyRange, rows int64) (Key, error) {
		lo := 0
		if r.Lower != nil {
			lo = num(r.Lower)
		}
		if lo+int(rows) >= 10 {
			return nil, nil
		}
		return keys(lo + int(rows)), nil
	}
	hash := func(r KeyRange) (ChunkFingerprint, error) {
		lo, hi := 0, 10
		if r.Lower != nil {
			lo = num(r.Lower)
		}
		if r.Upper != nil {
			hi = num(r.Upper)
		}
		return ChunkFingerprint{Lower: r.Lower, Upper: r.Upper, Rows: int64(hi - lo)}, nil
	}
	stored := &Fingerprint{Engine: "x", Tables: []TableFingerprint{{Name: "t", Keyed: true, PrimaryKey: []string{"id"},
		Chunks: []ChunkFingerprint{{Upper: keys(5)}, {Lower: keys(5)}}}}}
	boom := errors.New("boom")
	for _, tc := range []struct {
		name   string
		cfg    FingerprintConfig
		pk     []string
		bound  func(KeyRange, int64) (Key, error)
		chunks []int64
		err    error
	}{
		{"no primary key: one chunk", FingerprintConfig{ChunkRows: 3}, nil, bound, []int64{10}, nil},
		{"fixed rows", FingerprintConfig{ChunkRows: 3}, []string{"id"}, bound, []int64{3, 3, 3, 1}, nil},
		{"bounds from a stored fingerprint", FingerprintConfig{ChunkRows: 3, BoundsFrom: stored}, []string{"id"}, bound, []int64{5, 5}, nil},
		{"stored bounds of another key are ignored", FingerprintConfig{ChunkRows: 4, BoundsFrom: stored}, []string{"other"}, bound, []int64{4, 4, 2}, nil},
		{"bound fails", FingerprintConfig{ChunkRows: 3}, []string{"id"}, func(KeyRange, int64) (Key, error) { return nil, boom }, nil, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.HashChunks("t", tc.pk, tc.bound, hash)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			var rows []int64
			for _, ch := range got {
				rows = append(rows, ch.Rows)
			}
			if fmt.Sprint(rows) != fmt.Sprint(tc.chunks) {
				t.Errorf("chunk rows = %v, want %v", rows, tc.chunks)
			}
		})
	}
}
