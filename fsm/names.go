package fsm

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on user-supplied identifiers. They keep raft entries and snapshots
// small and keep names usable as file paths on every client platform.
const (
	MaxNameLen     = 1024
	MaxSegmentLen  = 255
	MaxTagLen      = 128
	MaxLabelKeyLen = 128
	MaxLabelValLen = 1024
	MaxLabels      = 64
	MaxTags        = 64
	MaxVersionLen  = 256
	MaxCommitLen   = 256
)

// ValidateName reports why name cannot be an artifact name. Names are
// slash-separated relative paths; anything that could escape a directory or
// be read two ways by a client is refused: control characters, runes that
// are invisible or change the direction of text (see hiddenRune), and
// spellings other than Unicode NFC. NFD "cafe\u0301.txt" and NFC
// "caf\u00e9.txt" look the same; accepting both would make them two
// artifacts, and renaming one silently would make a pull of the spelling
// that was pushed miss. Such a name is refused, and the message names the
// NFC spelling.
//
// This is the rule for binding a new name (the API, CheckPush, the
// proposer). Apply, lookups, tags and deletes hold names only to
// ValidateNameShape: Apply must decide the same on every build, and the
// Unicode tables behind hiddenRune and NFC change with Go releases; and a
// name an older build bound must stay reachable.
func ValidateName(name string) error {
	if err := ValidateNameShape(name); err != nil {
		return err
	}
	for _, r := range name {
		if hiddenRune(r) {
			return fmt.Errorf("%w: name %+q contains %U, an invisible, format or non-graphic character", ErrInvalid, name, r)
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Errorf("%w: name %+q is not in Unicode normalization form NFC; send it as %+q", ErrInvalid, name, norm.NFC.String(name))
	}
	return nil
}

// ExplainMissing turns err, a lookup of name that found nothing, into the
// reason a new artifact could not be bound to name, when there is one: the
// client then learns the spelling to use (a 400 naming the NFC form, say)
// rather than a bare 404. Lookups take names by ValidateNameShape only, so
// that names older builds bound stay reachable.
func ExplainMissing(name string, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if bad := ValidateName(name); bad != nil {
		return bad
	}
	return err
}

// ValidateNameShape is the part of ValidateName that every build has held
// names to and that depends on no Unicode table but the fixed control
// characters: a slash-separated relative path of valid UTF-8, with no
// empty, "." or ".." segment, no backslash, no control character, within
// the length limits.
func ValidateNameShape(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalid)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name longer than %d bytes", ErrInvalid, MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalid)
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: name %q is an absolute path", ErrInvalid, name)
	}
	if strings.ContainsRune(name, '\\') {
		return fmt.Errorf("%w: name %q contains a backslash", ErrInvalid, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: name %q contains a control character", ErrInvalid, name)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: name %q has an empty path segment", ErrInvalid, name)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: name %q has a %q segment", ErrInvalid, name, seg)
		case len(seg) > MaxSegmentLen:
			return fmt.Errorf("%w: a segment of name %q is longer than %d bytes", ErrInvalid, name, MaxSegmentLen)
		}
	}
	return nil
}

// hiddenRune reports a rune that a name may not hold because a reader
// cannot see it, or it changes how the text around it is shown: format
// characters (Cf: the bidi embeddings, overrides and isolates U+202A-202E
// and U+2066-2069, the marks U+200E, U+200F and U+061C, the zero-width
// U+200B-200D and U+2060, the BOM U+FEFF, the soft hyphen, tag
// characters), the other default-ignorable code points (variation
// selectors, the combining grapheme joiner, Hangul fillers), every space
// but U+0020, line and paragraph separators, private-use, surrogate and
// unassigned code points.
func hiddenRune(r rune) bool {
	switch {
	case r == ' ':
		return false
	case unicode.Is(unicode.Cf, r), unicode.IsSpace(r),
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r),
		unicode.Is(unicode.Variation_Selector, r):
		return true
	}
	// IsGraphic leaves out Cc, Cf, Co (private use), Cs, Cn (unassigned),
	// Zl and Zp.
	return !unicode.IsGraphic(r)
}

// ValidateTag reports why tag cannot be a tag. Tags appear in URLs and query
// strings, so they are limited to a conservative alphabet.
func ValidateTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLen {
		return fmt.Errorf("%w: tag must be 1 to %d bytes", ErrInvalid, MaxTagLen)
	}
	for _, r := range tag {
		if !isIdentRune(r) {
			return fmt.Errorf("%w: tag %q may hold only letters, digits, '.', '_', '-'", ErrInvalid, tag)
		}
	}
	return nil
}

// ValidateLabel reports why key=value cannot be a label.
func ValidateLabel(key, value string) error {
	if key == "" || len(key) > MaxLabelKeyLen {
		return fmt.Errorf("%w: label key must be 1 to %d bytes", ErrInvalid, MaxLabelKeyLen)
	}
	for _, r := range key {
		if !isIdentRune(r) && r != '/' {
			return fmt.Errorf("%w: label key %q may hold only letters, digits, '.', '_', '-', '/'", ErrInvalid, key)
		}
	}
	if len(value) > MaxLabelValLen || !utf8.ValidString(value) {
		return fmt.Errorf("%w: label %q value must be valid UTF-8 of at most %d bytes", ErrInvalid, key, MaxLabelValLen)
	}
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: label %q value contains a control character", ErrInvalid, key)
	}
	return nil
}

// ValidateDigest checks the "sha256:<64 lowercase hex>" form.
func ValidateDigest(d string) error {
	hex, ok := strings.CutPrefix(d, DigestPrefix)
	if !ok || len(hex) != 64 {
		return fmt.Errorf("%w: digest %q is not sha256:<64 hex digits>", ErrInvalid, d)
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: digest %q is not lowercase hex", ErrInvalid, d)
		}
	}
	return nil
}

// validateMeta checks the free-text metadata of a push.
func validateMeta(version, commit string, labels map[string]string, tags []string) error {
	if len(version) > MaxVersionLen || strings.IndexFunc(version, unicode.IsControl) >= 0 || !utf8.ValidString(version) {
		return fmt.Errorf("%w: version must be printable UTF-8 of at most %d bytes", ErrInvalid, MaxVersionLen)
	}
	if len(commit) > MaxCommitLen || strings.IndexFunc(commit, unicode.IsControl) >= 0 || !utf8.ValidString(commit) {
		return fmt.Errorf("%w: commit must be printable UTF-8 of at most %d bytes", ErrInvalid, MaxCommitLen)
	}
	if len(labels) > MaxLabels {
		return fmt.Errorf("%w: more than %d labels", ErrInvalid, MaxLabels)
	}
	for k, v := range labels {
		if err := ValidateLabel(k, v); err != nil {
			return err
		}
	}
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: more than %d tags", ErrInvalid, MaxTags)
	}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return err
		}
	}
	return nil
}

// ValidatePush checks everything a push carries besides its bytes, so that
// callers can refuse bad input before reading a body.
func ValidatePush(name, version, commit string, labels map[string]string, tags []string) error {
	return validatePush(ValidateName, name, version, commit, labels, tags)
}

func validatePush(nameRule func(string) error, name, version, commit string, labels map[string]string, tags []string) error {
	if err := nameRule(name); err != nil {
		return err
	}
	return validateMeta(version, commit, labels, tags)
}

func isIdentRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}
