package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

func newWaitCommand(o *options) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME [--timeout D]",
		Short: "Wait until a drain is Drained (a drain-and-replace Replaced), saying what it waits for",
		Long: `Wait until the GatewayDrain is Drained, as kubectl wait --for=condition=Drained
does (Replaced, for a drain-and-replace), but say what it waits for each time
that changes: the pods that block it and why. Exit 2 when the drain stalls
(its deadline passes, no targets, its wave halts) or is cancelled.` + "\n" + exitCodes,
		Example: `  kubectl hermes-drain wait before-upgrade --timeout 30m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := o.target(args[0])
			if err != nil {
				return err
			}
			gwd, err := o.follow(cmd.Context(), c, key, completed, timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "gatewaydrain.drain.hermes.dev/%s %s\n", key.Name, strings.ToLower(goalCondition(gwd)))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "Give up after this long and exit 3 (default: until the drain's deadline)")
	return cmd
}

func newCancelCommand(o *options) *cobra.Command {
	var timeout time.Duration
	var wait bool
	cmd := &cobra.Command{
		Use:   "cancel NAME [--wait]",
		Short: "Cancel a drain: the operator removes its markers and the gateways take turns again",
		Long: `Cancel a GatewayDrain (spec.action Cancel): the operator removes every marker
it wrote and the gateways take turns again. The object stays as the record;
delete it with kubectl delete gwd NAME, which also releases the gateways.` + "\n" + exitCodes,
		Example: `  kubectl hermes-drain cancel before-upgrade --wait`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := o.target(args[0])
			if err != nil {
				return err
			}
			gwd := &drainv1.GatewayDrain{}
			gwd.Namespace, gwd.Name = key.Namespace, key.Name
			patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"action":"Cancel"}}`))
			if err := c.Patch(cmd.Context(), gwd, patch); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "gatewaydrain.drain.hermes.dev/%s cancelled\n", key.Name)
			if !wait {
				return nil
			}
			if _, err := o.follow(cmd.Context(), c, key, released, timeout); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "gatewaydrain.drain.hermes.dev/%s released\n", key.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "Wait until every marker is removed")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "With --wait, give up after this long and exit 3")
	return cmd
}
