package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestValidateNameUnicode holds names to the rule that one name reads one
// way: no invisible or direction-changing runes, and one spelling per name
// (NFC), so a name that looks like another cannot be a second artifact.
func TestValidateNameUnicode(t *testing.T) {
	const nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
	good := []string{
		nfc,
		"\u00fcn\u00efcode.tar.gz",
		"team/\u65e5\u672c\u8a9e/\u0440\u0435\u043b\u0438\u0437.zip", // CJK and Cyrillic letters
		"with space.txt",
		"\u0627\u0644\u0639\u0631\u0628\u064a\u0629.bin", // Arabic letters, no controls
		"\u1e0d\u0307.txt", // a base with two marks, in canonical order and composed
	}
	bad := []struct{ why, name string }{
		{"NFD spelling", nfd},
		{"NFD in a directory", "caf" + "e\u0301/app.jar"},
		{"marks out of canonical order", "d\u0307\u0323.txt"},
		{"singleton decomposition (Angstrom sign)", "\u212b.txt"},
		{"RLO", "invoice\u202egpj.exe"},
		{"LRE", "a\u202ab"},
		{"PDF", "a\u202cb"},
		{"LRI", "a\u2066b"},
		{"PDI", "a\u2069b"},
		{"LRM", "a\u200eb"},
		{"RLM", "a\u200fb"},
		{"ALM", "a\u061cb"},
		{"zero-width space", "app\u200b.jar"},
		{"ZWNJ", "a\u200cb"},
		{"ZWJ", "a\u200db"},
		{"word joiner", "a\u2060b"},
		{"BOM", "\ufeffapp.jar"},
		{"soft hyphen (Cf)", "ap\u00adp.jar"},
		{"tag character (Cf)", "a\U000e0041b"},
		{"variation selector", "a\ufe0fb"},
		{"combining grapheme joiner", "a\u034fb"},
		{"Hangul filler", "a\u3164b"},
		{"no-break space", "a\u00a0b"},
		{"ideographic space", "a\u3000b"},
		{"line separator", "a\u2028b"},
		{"paragraph separator", "a\u2029b"},
		{"private use", "a\ue000b"},
		{"unassigned", "a\U0003ffffb"},
		{"C1 control", "a\u0085b"},
	}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	for _, tc := range bad {
		err := ValidateName(tc.name)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %q accepted", tc.why, tc.name)
			continue
		}
		// The message quotes the name with every non-ASCII rune escaped, so
		// the error itself cannot reorder or hide text in a terminal.
		for _, r := range err.Error() {
			if r > 0x7e {
				t.Errorf("%s: error %q carries the raw rune %U", tc.why, err, r)
				break
			}
		}
	}
	if err := ValidateName(nfd); err == nil || !strings.Contains(err.Error(), "NFC") {
		t.Errorf("NFD name: error %v does not say the name must be NFC", err)
	}
}

// A name that an older build could bind (here an NFD spelling) is refused
// at the proposer, but Apply, which every build must decide alike, holds it
// only to the shape rule: a replayed log binds it as it did before, and
// tags and deletes still reach it.
func TestApplyHoldsNamesToTheShapeRuleOnly(t *testing.T) {
	const nfd = "cafe\u0301.txt"
	c := put(nfd, 'a', 1)
	if err := c.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("proposer check: %v, want ErrInvalid", err)
	}
	f := New()
	if r := f.ApplyCommand(1, c); r.Status != StatusCreated {
		t.Fatalf("apply: %+v", r)
	}
	tag := Command{Op: OpTag, Tag: &TagChange{Name: nfd, Tag: "production-ready"}}
	if err := tag.Validate(); err != nil {
		t.Fatalf("tag of a bound name refused: %v", err)
	}
	if r := f.ApplyCommand(2, tag); r.Status != StatusUpdated {
		t.Fatalf("tag: %+v", r)
	}
	if err := (Command{Op: OpDeleteArtifact, Delete: &DeleteArtifact{Name: nfd}}).Validate(); err != nil {
		t.Fatalf("delete of a bound name refused: %v", err)
	}
	if err := ValidateNameShape("a/../b"); err == nil {
		t.Fatal("the shape rule took a .. segment")
	}
}

func TestExplainMissing(t *testing.T) {
	miss := fmt.Errorf("%w: x", ErrNotFound)
	if err := ExplainMissing("cafe\u0301.txt", miss); errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "NFC") {
		t.Errorf("NFD miss: %v, want the NFC rule", err)
	}
	if err := ExplainMissing("fine.txt", miss); !errors.Is(err, ErrNotFound) {
		t.Errorf("good-name miss: %v, want not found", err)
	}
	other := errors.New("leader gone")
	if err := ExplainMissing("cafe\u0301.txt", other); err != other {
		t.Errorf("other error: %v, want it unchanged", err)
	}
}
