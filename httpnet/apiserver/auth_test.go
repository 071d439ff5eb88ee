package apiserver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dtc-project/dtc/httpnet/apiserver"
)

func TestTokensFileErrorsNameTheLine(t *testing.T) {
	_, cred := apiserver.NewToken()
	for _, tc := range []struct{ file, want string }{
		{"submit a " + cred + "\nroot b " + cred, `line 2: role "root"`},
		{"submit a " + cred + "\nread a cn:x", `line 2: name "a" is used on line 1`},
		{"submit a sha256:abcd", "line 1: sha256: want 64 hex digits, got 4"},
		{"submit a sha256:" + strings.Repeat("zz", 32), "line 1: sha256: encoding/hex"},
		{"submit a " + cred + "\nread b " + cred, "line 2: the same token is listed twice"},
		{"# ok\nsubmit a", "line 2: want 3 fields"},
		{"submit a/b cn:x", `line 1: name "a/b"`},
		{"admin a token:xyz", `credential "token:xyz"`},
		{"admin a cn:", "cn: empty common name"},
	} {
		_, err := apiserver.ParseCredentials("tokens.txt", strings.NewReader(tc.file))
		if !errors.Is(err, apiserver.ErrTokensFile) || !strings.Contains(err.Error(), "tokens.txt "+tc.want) && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an ErrTokensFile with %q", tc.file, err, tc.want)
		}
	}
	c, err := apiserver.ParseCredentials("x", strings.NewReader("# nothing\n\n  \nadmin ops "+cred+"\nread ci cn:ci.example\n"))
	if err != nil || c.Len() != 2 {
		t.Fatalf("a good file: %v, %d clients", err, c.Len())
	}
}
