package transport

import (
	"bytes"
	"errors"
)

// errOverflow is what a runner's output stream gets once a call has printed
// more than maxOutput.
var errOverflow = errors.New("the call printed more than expected: aborted")

// capped keeps at most max bytes of a call's output. The first write past
// that calls overflow (which cancels the call) and fails, so a runaway
// command is stopped at once instead of streaming on; the parser then
// reports the overflow. (It must not embed bytes.Buffer: io.Copy would call
// the buffer's ReadFrom and bypass the cap.)
type capped struct {
	buf      bytes.Buffer
	max      int
	overflow func()
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		c.buf.Write(p[:max(c.max-c.buf.Len(), 0)])
		c.buf.WriteByte(0) // one byte past the cap: the parser sees the overflow
		c.overflow()
		return 0, errOverflow
	}
	return c.buf.Write(p)
}

// Bytes is what was kept.
func (c *capped) Bytes() []byte { return c.buf.Bytes() }
