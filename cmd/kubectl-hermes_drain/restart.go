package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

func newRestartCommand(o *options) *cobra.Command {
	var f drainFlags
	var maxUnavailable string
	var servingTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart -l SELECTOR [--max-unavailable N|P%] [--wait]",
		Short: "Drain and replace the gateway pods a label selector picks, a few at a time",
		Long: `Create a drain-and-replace GatewayDrain (spec.replace): kubectl rollout
restart, drained. The operator takes at most --max-unavailable gateways at a
time (the idle first) out of traffic, drains each, evicts its pod (its
PodDisruptionBudgets honoured), and waits for the pod its Deployment,
ReplicaSet or StatefulSet creates instead to serve before taking the next:
every other gateway keeps serving. An OnDelete StatefulSet's replacements run
its new template, so after applying one this is the whole upgrade.

A replacement that does not serve within --serving-timeout halts the wave:
nothing more is evicted, the drained gateways not yet replaced are released,
and the command exits 2 naming the pod. Fix the template, then resume with
  kubectl annotate gwd NAME drain.hermes.dev/resume=$(date -u +%Y-%m-%dT%H:%M:%SZ) --overwrite
With --wait, follow it until every target is Replaced.` + "\n" + exitCodes,
		Example: `  kubectl hermes-drain restart -l app=hermes-gateway --max-unavailable 10% --wait
  kubectl hermes-drain restart -l app=hermes-gateway --name upgrade-v2 --max-unavailable 1 --serving-timeout 3m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			replace, err := replaceSpec(maxUnavailable, servingTimeout)
			if err != nil {
				return err
			}
			return o.create(cmd, f, replace)
		},
	}
	drainFlagsOf(cmd, &f, "restart")
	cmd.Flags().StringVar(&maxUnavailable, "max-unavailable", "1", "How many gateways may be out at once: a number, or a percentage of the targets (rounded down, at least 1)")
	cmd.Flags().DurationVar(&servingTimeout, "serving-timeout", 0, "How long a replacement has to serve before the wave halts, 10s to 1h (default: the operator's, 5m)")
	return cmd
}

// replaceSpec is spec.replace from the flags. The API server checks them
// again; these errors only say it sooner.
func replaceSpec(maxUnavailable string, servingTimeout time.Duration) (*drainv1.ReplaceSpec, error) {
	v := intstr.Parse(maxUnavailable)
	// Of 100 targets, a valid value takes 1 to 100 percent (a number, 1 or more).
	if of100, err := intstr.GetScaledValueFromIntOrPercent(&v, 100, false); err != nil || of100 < 1 || v.Type == intstr.String && of100 > 100 {
		return nil, fmt.Errorf("--max-unavailable %q: a number of at least 1, or a percentage from 1%% to 100%%", maxUnavailable)
	}
	r := &drainv1.ReplaceSpec{MaxUnavailable: &v}
	if servingTimeout != 0 {
		r.ServingTimeout = &metav1.Duration{Duration: servingTimeout}
	}
	return r, nil
}
