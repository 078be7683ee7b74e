package checks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestKeyRangeWhere(t *testing.T) {
	k := func(v string) Key { return Key{json.RawMessage(v)} }
	cmp := func(op string, b Key) (string, error) { return "k " + op + " " + string(b[0]), nil }
	tests := []struct {
		r    KeyRange
		want string
	}{
		{KeyRange{}, ""},
		{KeyRange{Lower: k("1")}, " WHERE k > 1"},
		{KeyRange{Upper: k("9")}, " WHERE k <= 9"},
		{KeyRange{Lower: k("1"), Upper: k("9")}, " WHERE k > 1 AND k <= 9"},
	}
	for _, tt := range tests {
		got, err := tt.r.Where(cmp)
		if err != nil || got != tt.want {
			t.Errorf("%v.Where = %q, %v; want %q", tt.r, got, err, tt.want)
		}
	}
	boom := errors.New("boom")
	if _, err := (KeyRange{Lower: k("1")}).Where(func(string, Key) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func TestKeyRangeSplit(t *testing.T) {
	k := func(v string) Key { return Key{json.RawMessage(v)} }
	// next returns the bound 10 keys above the range's lower bound, or nil
	// past 45 (the end of the table).
	next := func(r KeyRange) (Key, error) {
		lo := 0
		if r.Lower != nil {
			_ = json.Unmarshal(r.Lower[0], &lo)
		}
		if lo+10 > 45 {
			return nil, nil
		}
		b, _ := json.Marshal(lo + 10)
		return Key{b}, nil
	}
	tests := []struct {
		name string
		r    KeyRange
		max  int
		want string
	}{
		{"to the end", KeyRange{}, 100, "[[10] [20] [30] [40]]"},
		{"stops at upper", KeyRange{Upper: k("30")}, 100, "[[10] [20]]"},
		{"from lower", KeyRange{Lower: k("20")}, 100, "[[30] [40]]"},
		{"capped", KeyRange{}, 2, "[[10] [20]]"},
	}
	for _, tt := range tests {
		got, err := tt.r.Split(tt.max, next)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, g := range got {
			s = append(s, "["+string(g[0])+"]")
		}
		if fmtKeys := "[" + strings.Join(s, " ") + "]"; fmtKeys != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, fmtKeys, tt.want)
		}
	}
	boom := errors.New("boom")
	if _, err := (KeyRange{}).Split(5, func(KeyRange) (Key, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}
