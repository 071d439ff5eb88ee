// Package jsonstr writes a Go string as a JSON string exactly as encoding/json's Marshal
// does, without reflection or allocation. The hand-written encoders on dtc's hot paths
// (the coordinator's and the participants' log records, the API's answers, the
// requests to participants) all use it, so that there is one place, held to json.Marshal
// by its tests, where JSON strings are escaped. AppendHTMLEscaped does the same for JSON
// text carried as it is (a json.RawMessage), held to json.HTMLEscape.
//
// It imports nothing but unicode/utf8: the coordinator, whose engine may import no
// package of this module that does IO, is allowed this one.
package jsonstr

import "unicode/utf8"

// safe says which bytes encoding/json writes as they are when it escapes HTML (as
// json.Marshal does): ASCII, printable, but not the quote, the backslash, <, > or &. A
// byte of a multi-byte sequence is not safe: its rune is looked at.
var safe = func() (safe [256]bool) {
	for b := ' '; b < utf8.RuneSelf; b++ {
		safe[b] = true
	}
	for _, b := range `"\<>&` {
		safe[b] = false
	}
	return safe
}()

const lowerHex = "0123456789abcdef"

// Append appends s as a quoted JSON string, escaped exactly as json.Marshal escapes it:
// \" \\ \b \f \n \r \t, other control bytes and < > & as \u00XX in lower-case hex,
// U+2028 and U+2029 as \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd.
func Append(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is safe and not yet appended
	for i := 0; i < len(s); {
		b := s[i]
		if safe[b] {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[b>>4], lowerHex[b&0xf])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[c&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendHTMLEscaped appends src, JSON text, with <, > and & written as \u003c, \u003e
// and \u0026 and U+2028 and U+2029 as \u2028 and \u2029: exactly what json.HTMLEscape
// writes, and so what json.Marshal makes of a json.RawMessage.
func AppendHTMLEscaped(dst, src []byte) []byte {
	start := 0
	for i, c := range src {
		if c == '<' || c == '>' || c == '&' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xF])
			start = i + 1
		}
		if c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[src[i+2]&0xF])
			start = i + len("\u2029")
		}
	}
	return append(dst, src[start:]...)
}
