package sqlpart

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Payload is what a prepare of the HTTP participant carries: the transaction's
// statements, run in order inside the transaction that is then prepared.
//
//	{"statements": [
//	  {"sql": "UPDATE accounts SET balance = balance - $1 WHERE id = $2", "args": [10, "alice"], "rows": 1},
//	  {"sql": "INSERT INTO transfers (id, amount) VALUES ($1, $2)", "args": ["t-1", 10]}
//	]}
//
// sql is one statement, given to the database as written, with the database's own
// placeholders ($1, $2, … for PostgreSQL; ? for MariaDB/MySQL). args are its parameters:
// JSON strings, booleans and null as such; a number is passed as an integer when it is
// one, else as its decimal text (so that the database, not a float64, converts it);
// arrays and objects are refused. rows, when present, is the number of rows the
// statement must affect: any other count NACKs the transaction (an UPDATE that found no
// account, a guarded debit "… WHERE balance >= $1" that found too little).
type Payload struct {
	Statements []Statement `json:"statements"`
}

// Statement is one parameterised statement of a Payload.
type Statement struct {
	SQL  string            `json:"sql"`
	Args []json.RawMessage `json:"args,omitempty"`
	Rows *int64            `json:"rows,omitempty"`
}

// ErrBadPayload is wrapped by every error about a payload that does not parse or breaks
// a bound.
var ErrBadPayload = errors.New("sqlpart: bad payload")

type stmt struct {
	sql  string
	args []any
	rows *int64
}

// parsePayload checks a payload and converts its arguments.
func parsePayload(raw []byte, statementsMax, bytesMax int) ([]stmt, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf(`%w: empty; want {"statements":[{"sql":…,"args":[…]},…]}`, ErrBadPayload)
	}
	if len(raw) > bytesMax {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadPayload, len(raw), bytesMax)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Payload
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf(`%w: %v; want {"statements":[{"sql":…,"args":[…],"rows":n?},…]}`, ErrBadPayload, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrBadPayload)
	}
	switch n := len(p.Statements); {
	case n == 0:
		return nil, fmt.Errorf("%w: no statements", ErrBadPayload)
	case n > statementsMax:
		return nil, fmt.Errorf("%w: %d statements, at most %d", ErrBadPayload, n, statementsMax)
	}
	out := make([]stmt, len(p.Statements))
	for i, s := range p.Statements {
		if s.SQL == "" {
			return nil, fmt.Errorf("%w: statement %d: empty sql", ErrBadPayload, i+1)
		}
		if s.Rows != nil && *s.Rows < 0 {
			return nil, fmt.Errorf("%w: statement %d: rows %d is negative", ErrBadPayload, i+1, *s.Rows)
		}
		args := make([]any, len(s.Args))
		for j, a := range s.Args {
			v, err := convertArg(a)
			if err != nil {
				return nil, fmt.Errorf("%w: statement %d, arg %d: %v", ErrBadPayload, i+1, j+1, err)
			}
			args[j] = v
		}
		out[i] = stmt{sql: s.SQL, args: args, rows: s.Rows}
	}
	return out, nil
}

func convertArg(a json.RawMessage) (any, error) {
	a = bytes.TrimSpace(a)
	if len(a) == 0 {
		return nil, errors.New("empty")
	}
	switch a[0] {
	case 'n':
		return nil, nil
	case 't', 'f':
		var b bool
		err := json.Unmarshal(a, &b)
		return b, err
	case '"':
		var s string
		err := json.Unmarshal(a, &s)
		return s, err
	case '[', '{':
		return nil, errors.New("arrays and objects are not arguments (pass JSON as a string)")
	default:
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(a))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			return nil, err
		}
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return i, nil
		}
		return n.String(), nil
	}
}

// digest is the payload's fingerprint, remembered with the transaction so that a
// repeated prepare with a different payload is told apart.
func digest(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	s := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(s[:])
}

// run executes the statements on q, each within timeout.
func runStatements(ctx context.Context, q Execer, stmts []stmt, timeout time.Duration) error {
	for i, s := range stmts {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := q.ExecContext(sctx, s.sql, s.args...)
		timedOut := sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if timedOut {
				return fmt.Errorf("statement %d: timed out after %v: %w", i+1, timeout, err)
			}
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
		if s.rows != nil {
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("statement %d: rows affected: %v", i+1, err)
			}
			if n != *s.rows {
				return fmt.Errorf("statement %d affected %d rows, want %d", i+1, n, *s.rows)
			}
		}
	}
	return nil
}

// Execer is what a transaction's own code gets in PrepareFunc: the connection the
// transaction to be prepared runs on. *sql.Conn implements it. The function must not
// commit, roll back or begin: the participant does.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var _ Execer = (*sql.Conn)(nil)
