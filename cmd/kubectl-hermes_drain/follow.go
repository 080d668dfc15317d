package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/drainview"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// goal is what a wait waits for.
type goal int

const (
	// completed: the Drained condition True, or Replaced for a
	// drain-and-replace.
	completed goal = iota
	// released: every marker removed after a cancel (Ready True, Released),
	// or after the deadline withdrew the drain.
	released
)

// verdict says whether the drain, as its status was last computed, reached
// the goal (done), never will (an exitStalled error), or still progresses.
// A status computed for an older generation says nothing yet.
func verdict(gwd *drainv1.GatewayDrain, g goal) (done bool, err error) {
	if gwd.Status.ObservedGeneration < gwd.Generation {
		return false, nil
	}
	conds := gwd.Status.Conditions
	stalled := meta.FindStatusCondition(conds, drainv1.ConditionStalled)
	isStalled := stalled != nil && stalled.Status == metav1.ConditionTrue
	switch g {
	case completed:
		switch {
		case meta.IsStatusConditionTrue(conds, goalCondition(gwd)):
			return true, nil
		case isStalled:
			return false, &exitCode{exitStalled, fmt.Sprintf("GatewayDrain %s/%s stalled (%s): %s", gwd.Namespace, gwd.Name, stalled.Reason,
				marker.Excerpt(stalled.Message, 4*drainview.MessageWidth))}
		case gwd.Spec.Action == drainv1.ActionCancel:
			return false, &exitCode{exitStalled, fmt.Sprintf("GatewayDrain %s/%s was cancelled", gwd.Namespace, gwd.Name)}
		}
	case released:
		ready := meta.FindStatusCondition(conds, drainv1.ConditionReady)
		switch {
		case ready != nil && ready.Status == metav1.ConditionTrue && ready.Reason == drainv1.ReasonReleased:
			return true, nil
		case isStalled && stalled.Reason == drainv1.ReasonDeadlineExceeded:
			return !meta.IsStatusConditionTrue(conds, drainv1.ConditionReconciling), nil
		case isStalled: // nothing was ever drained (no targets, bad selector)
			return true, nil
		}
	}
	return false, nil
}

// follow re-reads the drain until it reaches the goal, showing it as it
// goes: the table redrawn in place on a terminal, else a line each time what
// it waits for changes. timeout 0 waits as long as the drain may take (its
// deadline is at most 24h). It returns the drain as it read it at the goal,
// or an exitStalled or exitTimedOut error naming what blocks, or the API's
// error.
func (o *options) follow(ctx context.Context, c client.Client, key client.ObjectKey, g goal, timeout time.Duration) (*drainv1.GatewayDrain, error) {
	waitCtx, cancel := context.WithCancel(ctx)
	if timeout > 0 {
		waitCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	// waiting is what the drain last waited for while it progressed: a
	// drain withdrawn by its deadline releases every target, and its status
	// no longer names the pods that kept it from Drained.
	shown, waiting, drawn := "", "", ""
	for {
		obs, err := drain.Observe(waitCtx, c, key)
		switch {
		case apierrors.IsNotFound(err):
			return nil, &exitCode{exitStalled, fmt.Sprintf("GatewayDrain %s was deleted", key)}
		case errors.Is(waitCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			return nil, &exitCode{exitTimedOut, fmt.Sprintf("gave up waiting after %s: %s", timeout, shown)}
		case err != nil:
			return nil, err
		}
		if o.live {
			drawn = o.redraw(obs, drawn)
		}
		if line := progressLine(obs.GatewayDrain); line != shown {
			if !o.live {
				fmt.Fprintf(o.Out, "%s %s\n", time.Now().Format(time.TimeOnly), line)
			}
			shown = line
		}
		done, err := verdict(obs.GatewayDrain, g)
		var stalled *exitCode
		if errors.As(err, &stalled) && waiting != "" && !strings.Contains(stalled.msg, waiting) {
			stalled.msg += "; before that it was " + waiting
		}
		if done || err != nil {
			return obs.GatewayDrain, err
		}
		if c := meta.FindStatusCondition(obs.Status.Conditions, goalCondition(obs.GatewayDrain)); c != nil && c.Reason == drainv1.ReasonProgressing {
			waiting = marker.Excerpt(c.Message, 4*drainview.MessageWidth)
		}
		if err := o.sleep(waitCtx); err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
}

// redraw clears the terminal and draws the drain's table, unless it is the
// one drawn last; it returns the table on the screen.
func (o *options) redraw(obs *drain.Observed, drawn string) string {
	var table strings.Builder
	_ = drainview.Drain(&table, obs.GatewayDrain, obs.Targets, time.Now())
	if table.String() != drawn {
		fmt.Fprint(o.Out, "\033[H\033[2J"+table.String())
	}
	return table.String()
}

// goalCondition is the condition that says the drain is done: Drained, or
// Replaced for a drain-and-replace.
func goalCondition(gwd *drainv1.GatewayDrain) string {
	if drain.Replaces(gwd) {
		return drainv1.ConditionReplaced
	}
	return drainv1.ConditionDrained
}

// progressLine is the drain's progress and what it waits for, in one line:
// the goal condition's message names the pods that block it.
func progressLine(gwd *drainv1.GatewayDrain) string {
	if gwd.Status.ObservedGeneration < gwd.Generation {
		return fmt.Sprintf("%s/%s: waiting for the operator to act on the change (generation %d)", gwd.Namespace, gwd.Name, gwd.Generation)
	}
	goal := goalCondition(gwd)
	line := fmt.Sprintf("%s/%s %s %s", gwd.Namespace, gwd.Name, gwd.Status.Progress, strings.ToLower(goal))
	if c := meta.FindStatusCondition(gwd.Status.Conditions, goal); c != nil {
		line += fmt.Sprintf(", %s=%s %s", goal, c.Status, c.Reason)
		if c.Message != "" {
			line += ": " + marker.Excerpt(c.Message, 4*drainview.MessageWidth)
		}
	}
	return line
}
