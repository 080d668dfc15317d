package main

import (
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/drainview"
)

// drainData is `status NAME -o json|yaml`: the drain and every target its
// TargetSlices hold.
type drainData struct {
	GatewayDrain *drainv1.GatewayDrain `json:"gatewayDrain"`
	Targets      []drainv1.Target      `json:"targets"`
}

func newStatusCommand(o *options) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a drain pod by pod (target state, gateway state, turns in flight, what blocks it), or a summary of all drains",
		Example: `  kubectl hermes-drain status before-upgrade
  kubectl hermes-drain status -A
  kubectl hermes-drain status before-upgrade -o json | jq '.targets[] | select(.state != "Drained")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if len(args) == 0 {
				c, key, err := o.target("")
				if err != nil {
					return err
				}
				return o.summary(cmd, c, key.Namespace, all, output)
			}
			c, key, err := o.target(args[0])
			if err != nil {
				return err
			}
			obs, err := drain.Observe(cmd.Context(), c, key)
			if err != nil {
				return err
			}
			if output != "" {
				return printData(o.Out, output, drainData{withKind(obs.GatewayDrain), obs.Targets})
			}
			return drainview.Drain(o.Out, obs.GatewayDrain, obs.Targets, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "Summarise the drains of every namespace")
	outputFlag(cmd, &output)
	return cmd
}

func (o *options) summary(cmd *cobra.Command, c client.Client, ns string, all bool, output string) error {
	var list drainv1.GatewayDrainList
	var opts []client.ListOption
	if !all {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(cmd.Context(), &list, opts...); err != nil {
		return err
	}
	if output != "" {
		list.SetGroupVersionKind(drainv1.GroupVersion.WithKind("GatewayDrainList"))
		for i := range list.Items {
			withKind(&list.Items[i])
		}
		return printData(o.Out, output, &list)
	}
	return drainview.Drains(o.Out, list.Items, all, time.Now())
}
