package nixfile

import (
	"strings"
	"unicode"

	"github.com/pkg/errors"
)

// BuildKit's parser does not split the arguments of instructions it does not
// know (it keeps no Next nodes for them), so INSTALL's words are cut out of
// the joined source line here. Words
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
