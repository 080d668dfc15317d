package chart

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// selector is a metric an expression reads, and the labels it matches on.
type selector struct {
	metric string
	labels []string
}

// notMetrics are PromQL's words that can stand where a metric name could:
// aggregations, keywords, and the literals.
var notMetrics = words(`sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
	and or unless bool offset atan2 inf nan`)

// labelLists are the keywords a list of label names follows.
var labelLists = words("by without on ignoring group_left group_right")

func words(s string) map[string]bool {
	set := map[string]bool{}
	for _, w := range strings.Fields(s) {
		set[w] = true
	}
	return set
}

var (
	matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	quoted       = regexp.MustCompile(`"(\\.|[^"\\])*"`)
)

// selectors finds the metrics a PromQL expression (a Grafana one too: its
// $variables are skipped) reads. A name is a metric unless it is a
// function (followed by a parenthesis), a keyword or aggregation, or in a
// label list; a matcher block names the labels of the metric before it.
// A block that follows no name is a selector without a metric.
func selectors(expr string) []selector {
	var out []selector
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
	}
	skipSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\n", rune(expr[i])) {
			i++
		}
		return i
	}
	str := func(i int) int { // the index after the string that starts at i
		q := expr[i]
		for i++; i < len(expr) && expr[i] != q; i++ {
			if expr[i] == '\\' && q != '`' {
				i++
			}
		}
		return i + 1
	}
	closing := func(i int, end byte) int { // the index after the end byte closing the bracket at i
		for i++; i < len(expr) && expr[i] != end; {
			if q := expr[i]; q == '"' || q == '\'' || q == '`' {
				i = str(i)
			} else {
				i++
			}
		}
		return i + 1
	}
	for i := 0; i < len(expr); {
		switch c := expr[i]; {
		case c == '"' || c == '\'' || c == '`':
			i = str(i)
		case c == '[':
			i = closing(i, ']')
		case c == '{':
			end := closing(i, '}')
			out = append(out, selector{labels: matchers(expr[i+1 : end-1])})
			i = end
		case c == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(expr) && expr[i] == '{' {
				i = closing(i, '}')
			}
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
		case '0' <= c && c <= '9' || c == '.': // a number or a duration
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			start := i
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
			word, next := expr[start:i], skipSpace(i)
			switch {
			case labelLists[word]:
				if next < len(expr) && expr[next] == '(' {
					i = closing(next, ')')
				}
			case notMetrics[word] || next < len(expr) && expr[next] == '(':
			default:
				s := selector{metric: word}
				if next < len(expr) && expr[next] == '{' {
					end := closing(next, '}')
					s.labels = matchers(expr[next+1 : end-1])
					i = end
				}
				out = append(out, s)
			}
		default:
			i++
		}
	}
	return out
}

// matchers names the labels of a matcher block's matchers.
func matchers(block string) []string {
	var labels []string
	for _, m := range matcherLabel.FindAllStringSubmatch(quoted.ReplaceAllString(block, `""`), -1) {
		labels = append(labels, m[1])
	}
	return labels
}

func TestSelectorsFindTheMetricsAnExpressionReads(t *testing.T) {
	for expr, want := range map[string]string{
		`time() - max by (namespace, name) (a_seconds) > 1800 and on (namespace, name) b{type="Drained", status=~"False|x="} == 1`: `[{a_seconds []} {b [type status]}]`,
		`histogram_quantile(0.5, sum by (transport, le) (rate(c_bucket{op!="read"}[$__rate_interval])))`:                           `[{c_bucket [op]}]`,
		`sum(increase(d_total[1h])) or vector(0)`:               `[{d_total []}]`,
		`count(e{namespace=~"$namespace"} offset 5m) by (name)`: `[{e [namespace]}]`,
		`label_replace(g, "dst", "$1", "src", "(.*)")`:          `[{g []}]`,
		`{__name__="f"}`: `[{ [__name__]}]`,
	} {
		if got := fmt.Sprint(selectors(expr)); got != want {
			t.Errorf("%s: %s, want %s", expr, got, want)
		}
	}
}
