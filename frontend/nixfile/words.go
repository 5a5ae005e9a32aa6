package nixfile

import (
	"strings"
	"unicode"

	"github.com/pkg/errors"
)

// BuildKit's parser does not split the arguments of instructions it does not
// know, so INSTALL's words are cut out of the joined source line here. Words
// keep their quotes, escapes and ${VAR} references exactly as written: they are
// handed to BuildKit's shell lexer once, at expansion time, so that quoting
// means the same in INSTALL as in COPY or ENV.

// splitWords splits s at whitespace that is outside quotes and outside
// ${...} substitutions. escape is the file's escape token.
func splitWords(s string, escape rune) ([]string, error) {
	rs := []rune(s)
	var words []string
	i := 0
	for {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		if i >= len(rs) {
			return words, nil
		}
		start := i
		for i < len(rs) && !unicode.IsSpace(rs[i]) {
			next, err := skipToken(rs, i, escape)
			if err != nil {
				return words, err
			}
			i = next
		}
		words = append(words, string(rs[start:i]))
	}
}

// skipToken returns the index after the token starting at rs[i]: a quoted
// string, an escaped character, a ${...} substitution or a single character.
func skipToken(rs []rune, i int, escape rune) (int, error) {
	switch {
	case rs[i] == '\'':
		return skipSingle(rs, i)
	case rs[i] == '"':
		return skipDouble(rs, i, escape)
	case rs[i] == escape:
		return min(i+2, len(rs)), nil
	case rs[i] == '$' && i+1 < len(rs) && rs[i+1] == '{':
		return skipBrace(rs, i, escape)
	}
	return i + 1, nil
}

// skipSingle skips a single-quoted string; like the shell lexer, the escape
// token has no meaning inside it.
func skipSingle(rs []rune, i int) (int, error) {
	for j := i + 1; j < len(rs); j++ {
		if rs[j] == '\'' {
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated single quote")
}

func skipDouble(rs []rune, i int, escape rune) (int, error) {
	for j := i + 1; j < len(rs); {
		switch {
		case rs[j] == '"':
			return j + 1, nil
		case rs[j] == escape:
			j += 2
		case rs[j] == '$' && j+1 < len(rs) && rs[j+1] == '{':
			next, err := skipBrace(rs, j, escape)
			if err != nil {
				return 0, err
			}
			j = next
		default:
			j++
		}
	}
	return 0, errors.New("unterminated double quote")
}

// skipBrace skips ${...}; the lexer processes quotes inside a substitution's
// operand (${X:-"a b"}), so they are honoured here too.
func skipBrace(rs []rune, i int, escape rune) (int, error) {
	for j := i + 2; j < len(rs); {
		switch {
		case rs[j] == '}':
			return j + 1, nil
		case rs[j] == '\'':
			next, err := skipSingle(rs, j)
			if err != nil {
				return 0, err
			}
			j = next
		case rs[j] == '"':
			next, err := skipDouble(rs, j, escape)
			if err != nil {
				return 0, err
			}
			j = next
		case rs[j] == escape:
			j += 2
		case rs[j] == '$' && j+1 < len(rs) && rs[j+1] == '{':
			next, err := skipBrace(rs, j, escape)
			if err != nil {
				return 0, err
			}
			j = next
		default:
			j++
		}
	}
	return 0, errors.New("missing '}' in ${...}")
}

// splitAssign splits the raw word NAME=VALUE at its first '=' that is not
// escaped or inside ${...}, keeping both halves valid shell words: when the
// '=' sits inside quotes ('a=b c'), the quote is closed after the name and
// reopened before the value ('a' and 'b c').
func splitAssign(raw string, escape rune) (name, value string, ok bool) {
	rs := []rune(raw)
	quote := rune(0)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
			i++
		case quote != 0 && c == quote:
			quote = 0
			i++
		case c == escape && quote != '\'':
			i += 2
		case c == '$' && quote != '\'' && i+1 < len(rs) && rs[i+1] == '{':
			next, err := skipBrace(rs, i, escape)
			if err != nil {
				return "", "", false
			}
			i = next
		case c == '=':
			name, value = string(rs[:i]), string(rs[i+1:])
			if quote != 0 {
				name += string(quote)
				value = string(quote) + value
			}
			return name, value, true
		default:
			i++
		}
	}
	return "", "", false
}

// firstWord splits an instruction line into its keyword and the rest, the
// way BuildKit's parser does.
func firstWord(line string) (string, string) {
	line = strings.TrimSpace(line)
	i := strings.IndexFunc(line, isParserSpace)
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimLeftFunc(line[i:], isParserSpace)
}

// isParserSpace matches BuildKit's parser whitespace ([\t\v\f\r ]).
func isParserSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\v', '\f', '\r':
		return true
	}
	return false
}

// rawFlagWords returns the source text of the leading --flags of an
// instruction's arguments, cut exactly where BuildKit's
// extractBuilderFlags cuts them, so that re-emitting them reproduces the same
// flags (quotes and escapes included).
func rawFlagWords(args string, escape rune) []string {
	const (
		inSpaces = iota
		inWord
		inQuote
	)
	var words []string
	phase := inSpaces
	quote := byte(0)
	start := 0
	for pos := 0; pos <= len(args); pos++ {
		if phase == inSpaces {
			if pos == len(args) {
				break
			}
			ch := args[pos]
			if unicode.IsSpace(rune(ch)) {
				continue
			}
			if ch != '-' || pos+1 == len(args) || args[pos+1] != '-' {
				return words
			}
			phase = inWord
			start = pos
		}
		if pos == len(args) {
			if w := args[start:]; w != "--" {
				words = append(words, w)
			}
			break
		}
		ch := args[pos]
		switch phase {
		case inWord:
			switch {
			case unicode.IsSpace(rune(ch)):
				w := args[start:pos]
				if w == "--" {
					return words
				}
				words = append(words, w)
				phase = inSpaces
			case ch == '\'' || ch == '"':
				quote = ch
				phase = inQuote
			case rune(ch) == escape:
				if pos+1 < len(args) {
					pos++
				}
			}
		case inQuote:
			switch {
			case ch == quote:
				phase = inWord
			case rune(ch) == escape:
				if pos+1 < len(args) {
					pos++
				} else {
					phase = inWord
				}
			}
		}
	}
	return words
}
