package glob

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"orders", "orders", true},
		{"orders", "orders2", false},
		{"order?", "orders", true},
		{"order?", "order", false},
		{"pg_*", "pg_toast", true},
		{"*_log", "audit_log", true},
		{"*_log", "audit_logs", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"public.*", "public.t", true},
		{"public.*", "other.t", false},
		{"t?bl?", "täblé", true}, // runes, not bytes
		{"[a]", "[a]", true},     // brackets are not special
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
