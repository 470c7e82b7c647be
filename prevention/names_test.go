package prevention_test

import (
	"errors"
	"testing"

	"github.com/stopline/stopline/prevention"
)

func TestCheckNameRefusesInvisible(t *testing.T) {
	for _, name := range []string{
		"shell\x00", "sh\u200bell", "shell\u200d", "\ufeffshell", "sh\u00adell", "shell\u202e",
		"shell\n", "shell\t", "sh\x7fell", "shell\u2028", "shell\ufe0f", "shell\U000e0001",
		"shell\ue000", "shell\ufffd", "sh\xffell", "shell\u034f", "shell\U0010ffff", "shell\u0378",
	} {
		if err := prevention.CheckName(name); !errors.Is(err, prevention.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	for _, name := range []string{"", "shell", "Shell", "shell ", "ｓｈｅｌｌ", "ѕһеll", "web.search", "数据库", "café", "naïve_tool-2"} {
		if err := prevention.CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"shell": "shell", "Shell": "shell", "SHELL": "shell", " shell ": "shell", "shell\u00a0": "shell",
		"ｓｈｅｌｌ": "shell", "ＳＨＥＬＬ": "shell", "ﬁle_read": "file_read", "Straße": "strasse",
		"\u212aill": "kill", "ſhell": "shell", "ѕһеll": "ѕһеll",
	} {
		if got := prevention.NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}
