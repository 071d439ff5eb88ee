package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dtc-project/dtc/httpnet/apiserver"
)

const tokenHelp = `Usage: dtc token --role ROLE --name NAME [--append FILE]

Makes a new random bearer token (256 bits) for a client of the coordinator's API and
prints it on stdout. Its line for the tokens file (dtc serve --tokens) holds only the
token's SHA-256: with --append it is added to FILE (created with mode 0600), otherwise
it is printed on stderr. A running dtc serve reads the file again on SIGHUP.

The tokens file has one client per line, '#' starts a comment:
  ROLE  NAME  sha256:<64 hex digits>   a bearer token (Authorization: Bearer <token>)
  ROLE  NAME  cn:<common name>         a client certificate verified by --client-ca
Roles: submit (begins transactions, reads the ones it began), read (reads every
transaction and the metrics, begins none), admin (everything). NAME (letters, digits,
. _ - :) is unique in the file and is recorded as the owner of the transactions the
client begins.

Examples:
  dtc token --role submit --name shop --append /etc/dtc/tokens > shop.token
  dtc submit --token-file shop.token http://127.0.0.1:9001/prepare

Exit codes:
  0  made
  1  FILE could not be written
  2  bad flags
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token")
	var (
		role     = fs.String("role", "", "submit, read or admin")
		name     = fs.String("name", "", "the client's name (owner of the transactions it begins)")
		appendTo = fs.String("append", "", "add the tokens-file line to this file instead of printing it on stderr")
	)
	if ok, code := parse(fs, tokenHelp, args, []string{}, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "token", "unexpected argument %q", fs.Arg(0))
	}
	if _, err := apiserver.ParseRole(*role); err != nil {
		return usageError(stderr, "token", "--role %q: use submit, read or admin", *role)
	}
	token, cred := apiserver.NewToken()
	line := fmt.Sprintf("%s %s %s\n", *role, *name, cred)
	if _, err := apiserver.ParseCredentials("--name", strings.NewReader(line)); err != nil {
		return usageError(stderr, "token", "--name %q: use 1 to 64 letters, digits and . _ - :", *name)
	}
	if *appendTo == "" {
		fmt.Fprintf(stderr, "# the line for the tokens file (dtc serve --tokens):\n%s", line)
	} else {
		f, err := os.OpenFile(*appendTo, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			_, err = f.WriteString(line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "dtc token: %v\n", err)
			return exitNo
		}
	}
	fmt.Fprintln(stdout, token)
	return exitOK
}
