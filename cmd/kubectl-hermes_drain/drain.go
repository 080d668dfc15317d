package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
)

type drainFlags struct {
	selector, name, container, output string
	timeout, waitTimeout              time.Duration
	wait, completeWorkCounting        bool
}

func newDrainCommand(o *options) *cobra.Command {
	var f drainFlags
	cmd := &cobra.Command{
		Use:   "drain -l SELECTOR [--name NAME] [--timeout D] [--wait]",
		Short: "Create a GatewayDrain for the gateway pods a label selector picks",
		Long: `Create a GatewayDrain: the operator takes the matching gateway pods out of
traffic, asks each to drain, and reports Drained when none has a turn in
flight. The drain withdraws itself after --timeout (the operator's default is 2h).
With --wait, follow it until Drained.` + "\n" + exitCodes,
		Example: `  kubectl hermes-drain drain -l app=hermes-gateway --name before-upgrade --timeout 1h --wait
  kubectl hermes-drain drain -l app=hermes-gateway -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.create(cmd, f, nil) },
	}
	drainFlagsOf(cmd, &f, "drain")
	return cmd
}

// drainFlagsOf adds the flags drain and restart share.
func drainFlagsOf(cmd *cobra.Command, f *drainFlags, verb string) {
	until := map[string]string{"drain": "Drained", "restart": "every target is Replaced"}[verb]
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "Label selector of the gateway pods to "+verb+" (required)")
	cmd.Flags().StringVar(&f.name, "name", "", "The GatewayDrain's name (default: generated, "+verb+"-XXXXX)")
	cmd.Flags().StringVar(&f.container, "container", "", "The gateway container (default: the pod's drain.hermes.dev/container annotation, else its first container)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "The drain's deadline, 1m to 24h, after which it withdraws itself (default: the operator's, 2h)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "Follow it until "+until+"; exit 2 if it stalls")
	cmd.Flags().BoolVar(&f.completeWorkCounting, "require-complete-work-counting", false, "Call a gateway drained only if its record shows it counts API-server and cron work too (upstream v0.20.6 and later)")
	cmd.Flags().DurationVar(&f.waitTimeout, "wait-timeout", 0, "With --wait, give up after this long and exit 3 (default: until the drain's deadline)")
	outputFlag(cmd, &f.output)
	_ = cmd.MarkFlagRequired("selector")
}

// create creates the GatewayDrain the flags ask for (one that replaces its
// targets when replace is set), and follows it with --wait.
func (o *options) create(cmd *cobra.Command, f drainFlags, replace *drainv1.ReplaceSpec) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	gwd, err := newGatewayDrain(f)
	if err != nil {
		return err
	}
	if gwd.Spec.Replace = replace; replace != nil && f.name == "" {
		gwd.GenerateName = "restart-"
	}
	c, key, err := o.target(gwd.Name)
	if err != nil {
		return err
	}
	gwd.Namespace = key.Namespace
	if err := c.Create(cmd.Context(), gwd); err != nil {
		return err
	}
	key.Name = gwd.Name // generated when --name was not given
	if f.output == "" {
		fmt.Fprintf(o.Out, "gatewaydrain.drain.hermes.dev/%s created\n", gwd.Name)
	}
	if f.wait {
		if f.output != "" { // the data goes to stdout; progress to stderr
			o.Out, o.ErrOut, o.live = o.ErrOut, o.Out, isTerminal(o.ErrOut)
			defer func() { o.Out, o.ErrOut = o.ErrOut, o.Out }()
		}
		if _, err := o.follow(cmd.Context(), c, key, completed, f.waitTimeout); err != nil {
			return err
		}
	}
	if f.output == "" {
		return nil
	}
	obs, err := drain.Observe(cmd.Context(), c, key)
	if err != nil {
		return err
	}
	return printData(o.Out, f.output, withKind(obs.GatewayDrain))
}

// newGatewayDrain is the GatewayDrain the flags ask for. The API server
// validates it again (an empty selector, a timeout out of range).
func newGatewayDrain(f drainFlags) (*drainv1.GatewayDrain, error) {
	sel, err := metav1.ParseToLabelSelector(f.selector)
	if err != nil {
		return nil, fmt.Errorf("-l %q: %w", f.selector, err)
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return nil, fmt.Errorf("-l %q selects every pod of the namespace: name the gateways", f.selector)
	}
	gwd := &drainv1.GatewayDrain{
		ObjectMeta: metav1.ObjectMeta{Name: f.name},
		Spec: drainv1.GatewayDrainSpec{Selector: *sel, Action: drainv1.ActionDrain, Container: f.container,
			RequireCompleteWorkCounting: f.completeWorkCounting},
	}
	if f.name == "" {
		gwd.GenerateName = "drain-"
	}
	if f.timeout != 0 {
		gwd.Spec.Timeout = &metav1.Duration{Duration: f.timeout}
	}
	return gwd, nil
}

// withKind sets the object's apiVersion and kind, which typed clients leave
// empty, so that printed data can be applied again.
func withKind(gwd *drainv1.GatewayDrain) *drainv1.GatewayDrain {
	gwd.SetGroupVersionKind(drainv1.GroupVersion.WithKind("GatewayDrain"))
	return gwd
}
