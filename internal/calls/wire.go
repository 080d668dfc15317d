package calls

import "github.com/hermes-agent/hermes-drain-operator/internal/marker"

// The agent's wire protocol, one definition for the agent (internal/agent)
// and the operator's client (Agent): the three calls are
// POST https://POD_IP:PORT/v1/project|clear|read with an AgentCall as JSON,
// answered by an AgentReply. The caller authenticates with its projected
// ServiceAccount token (Authorization: Bearer) and sends a fresh nonce and
// its clock's time; the agent answers with its own pod-bound token.
const (
	AgentPathPrefix  = "/v1/"
	HeaderNonce      = "X-Hermes-Drain-Nonce"
	HeaderTime       = "X-Hermes-Drain-Time"
	HeaderAgentToken = "X-Hermes-Drain-Agent-Token"
)

// AgentCall is one call's arguments.
type AgentCall struct {
	// Home is the HERMES_HOME the caller means ("" for the agent's own).
	Home string `json:"home,omitempty"`
	// Marker, Replaceable and LeaveTraffic are project's.
	Marker       *marker.Request `json:"marker,omitempty"`
	Replaceable  []byte          `json:"replaceable,omitempty"`
	LeaveTraffic bool            `json:"leaveTraffic,omitempty"`
	Profiles     []string        `json:"profiles,omitempty"`
	// OwnerUID is clear's.
	OwnerUID string `json:"ownerUID,omitempty"`
}

// AgentReply is what the call saw, and its error in the gateway's
// HERMES_HOME ("" for none).
type AgentReply struct {
	Observation Observation `json:"observation"`
	Error       string      `json:"error,omitempty"`
}
