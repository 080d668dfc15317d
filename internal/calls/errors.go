package calls

import (
	"errors"
	"fmt"
)

// ErrorKind is how a call failed, for status, metrics and retries to switch
// on. Its value is the result a failed call is counted under in
// hermes_drain_transport_calls_total.
type ErrorKind string

const (
	// Unreachable: the call did not get through (the exec stream or the
	// agent's connection failed, the operator had no token for the agent,
	// or the agent refused the operator).
	Unreachable ErrorKind = "transport"
	// Unauthenticated: the reply did not come from the agent of that pod.
	Unauthenticated ErrorKind = "unauthenticated"
	// BadOutput: the report or the reply could not be read.
	BadOutput ErrorKind = "output"
	// Refused: the program or the agent refused or failed in the
	// gateway's HERMES_HOME, and said why.
	Refused ErrorKind = "container"
)

// Error is a call's failure and its kind.
type Error struct {
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Failure wraps err as a failure of that kind.
func Failure(kind ErrorKind, err error) error { return &Error{Kind: kind, Err: err} }

// KindOf is the kind of a call's failure: Unreachable for an error no
// transport classified.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Unreachable
}

// ContainerError is how every implementation reports a refusal or failure
// in the gateway's HERMES_HOME.
func ContainerError(msg string) error {
	return Failure(Refused, fmt.Errorf("in container: %s", msg))
}

// Op is one of the three calls.
type Op string

const (
	OpProject Op = "project"
	OpClear   Op = "clear"
	OpRead    Op = "read"
)
