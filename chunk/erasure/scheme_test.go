package erasure

import (
	"errors"
	"testing"
)

func TestSchemeString(t *testing.T) {
	for _, tt := range []struct {
		s    Scheme
		want string
	}{{Scheme{1, 0}, "1+0"}, {Scheme{2, 1}, "2+1"}, {Scheme{4, 2}, "4+2"}, {Scheme{10, 4}, "10+4"}} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.s, got, tt.want)
		}
		if back, err := ParseScheme(tt.want); err != nil || back != tt.s {
			t.Errorf("ParseScheme(%q) = %v, %v; want %v", tt.want, back, err, tt.s)
		}
	}
}

func TestParseScheme(t *testing.T) {
	tests := []struct {
		in      string
		want    Scheme
		wantErr bool
	}{
		{"4+2", Scheme{4, 2}, false},
		{"1+0", Scheme{1, 0}, false},
		{"14+2", Scheme{14, 2}, false},
		{"016+0", Scheme{16, 0}, false},
		{"", Scheme{}, true},
		{"4", Scheme{}, true},
		{"4+", Scheme{}, true},
		{"+2", Scheme{}, true},
		{"0+1", Scheme{}, true},
		{"4+-1", Scheme{}, true},
		{"+4+2", Scheme{}, true},
		{"4++2", Scheme{}, true},
		{"4+2+1", Scheme{}, true},
		{" 4+2", Scheme{}, true},
		{"4+2 ", Scheme{}, true},
		{"a+b", Scheme{}, true},
		{"4-2", Scheme{}, true},
		{"15+2", Scheme{}, true},
		{"9999999999999999999999+1", Scheme{}, true},
	}
	for _, tt := range tests {
		got, err := ParseScheme(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidScheme) {
				t.Errorf("ParseScheme(%q) = %v, %v; want ErrInvalidScheme", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseScheme(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSchemeValidate(t *testing.T) {
	tests := []struct {
		s  Scheme
		ok bool
	}{
		{Scheme{1, 0}, true}, {Scheme{4, 2}, true}, {Scheme{16, 0}, true}, {Scheme{8, 8}, true},
		{Scheme{0, 0}, false}, {Scheme{0, 2}, false}, {Scheme{-1, 2}, false}, {Scheme{2, -1}, false}, {Scheme{9, 8}, false},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidScheme)) {
			t.Errorf("%#v.Validate() = %v, want ok=%v", tt.s, err, tt.ok)
		}
	}
}

func TestSchemeFor(t *testing.T) {
	tests := []struct {
		nodes int
		want  Scheme
	}{
		{-1, Scheme{1, 0}}, {0, Scheme{1, 0}}, {1, Scheme{1, 0}}, {2, Scheme{1, 1}}, {3, Scheme{2, 1}},
		{4, Scheme{2, 2}}, {5, Scheme{3, 2}}, {6, Scheme{4, 2}}, {7, Scheme{4, 2}}, {100, Scheme{4, 2}},
	}
	for _, tt := range tests {
		got := SchemeFor(tt.nodes)
		if got != tt.want {
			t.Errorf("SchemeFor(%d) = %v, want %v", tt.nodes, got, tt.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("SchemeFor(%d) is invalid: %v", tt.nodes, err)
		}
		if tt.nodes >= 1 && got.Shards() > tt.nodes {
			t.Errorf("SchemeFor(%d) = %v needs more nodes than exist", tt.nodes, got)
		}
	}
}
