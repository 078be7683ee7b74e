package checks

import (
	"encoding/json"
	"errors"
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
