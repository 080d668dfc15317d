package transport

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// errOverflow is what a runner returns once a call has printed more than
// maxOutput on stdout or on stderr.
var errOverflow = errors.New("the call printed more than expected: aborted")

// capped keeps the first keep bytes of a call's output stream. The first
// write that takes the stream past max bytes calls overflow (which cancels
// the call) and fails, so a runaway command is stopped at once instead of
// streaming on. (It must not embed bytes.Buffer: io.Copy would call the
// buffer's ReadFrom and bypass the cap.)
type capped struct {
	buf      bytes.Buffer
	keep     int
	max      int
	written  int
	overflow func()
}

// outputs are a call's stdout and stderr. stdout keeps one byte past
// maxOutput, so the parser sees an overflow; stderr only serves an error
// message, which keeps maxErrorLength bytes of it.
func outputs(abort func()) (stdout, stderr *capped) {
	return &capped{keep: maxOutput + 1, max: maxOutput, overflow: abort},
		&capped{keep: maxErrorLength + 1, max: maxOutput, overflow: abort}
}

func (c *capped) Write(p []byte) (int, error) {
	c.buf.Write(p[:min(len(p), max(c.keep-c.buf.Len(), 0))])
	c.written += len(p)
	if c.over() {
		c.overflow()
		return 0, errOverflow
	}
	return len(p), nil
}

func (c *capped) over() bool { return c.written > c.max }

// Bytes is what was kept.
func (c *capped) Bytes() []byte { return c.buf.Bytes() }

// failed is a runner's error for a call that failed with err: an overflow
// if either stream overflowed (the stream then reports a cancellation or
// nothing at all), with what it printed on stderr, shortened.
func failed(err error, stdout, stderr *capped) error {
	if stdout.over() || stderr.over() {
		err = errOverflow
	}
	if msg := strings.TrimSpace(string(stderr.Bytes())); msg != "" {
		err = fmt.Errorf("%w: %s", err, marker.Shorten(msg, maxErrorLength))
	}
	return err
}
