// Package drain is what a GatewayDrain is, apart from the reconciler that
// acts on it (controllers/gatewaydrain): when it stands or was withdrawn
// (Withdrawal, Stands), which pods it takes and when a target's
// instantiation is over (NewTarget, Skipped, InstantiationOver, Holds), its
// status computed from its targets (ComputeStatus), and the read side of
// its TargetSlices (Observe, ListTargets, StandingTarget) with the cache
// indexes they need (SetupIndexes). The kubectl plugin, the readiness
// reconciler and the demo read drains through it; nothing here writes.
package drain
