// Package marker is the Hermes gateway's drain contract, as pure functions:
// the drain marker {HERMES_HOME}/.drain_request.json (rendering ours, parsing
// any), the instantiation epoch (boot_id:pid1_starttime) and when the gateway
// honours a marker, and the gateway's runtime status gateway_state.json.
//
// It mirrors upstream gateway/drain_control.py and gateway/status.py; see
// docs/contract.md. Nothing here does I/O.
package marker
