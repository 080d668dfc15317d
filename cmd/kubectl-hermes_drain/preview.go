package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/drainview"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// previewData is `preview -o json|yaml`.
type previewData struct {
	Namespace string `json:"namespace"`
	Selector  string `json:"selector"`
	// Targets counts the pods a drain created now would take.
	Targets int `json:"targets"`
	// Read says whether the gateways were read, and NotRead why not.
	Read    bool         `json:"read"`
	NotRead string       `json:"notRead,omitempty"`
	Pods    []previewPod `json:"pods"`
}

// previewPod is one pod the selector matches, as a drain created now would
// treat it.
type previewPod struct {
	Name string `json:"name"`
	// Target: a drain created now would take it; else Skipped says why.
	Target  bool   `json:"target"`
	Skipped string `json:"skipped,omitempty"`
	// HeldBy is the standing GatewayDrain that drains this instantiation
	// already: a second drain would find its marker and wait (Conflict).
	HeldBy string `json:"heldBy,omitempty"`
	// Ready is the pod's Ready condition; Gate its readiness gate's, for gated pods.
	Ready corev1.ConditionStatus `json:"ready,omitempty"`
	Gate  corev1.ConditionStatus `json:"gate,omitempty"`
	// Home is what a read of its HERMES_HOME found; ReadError why it failed.
	Home      *calls.HomeStatus `json:"home,omitempty"`
	ReadError string            `json:"readError,omitempty"`
}

// readers bounds the reads in flight at once.
const readers = 8

func newPreviewCommand(o *options) *cobra.Command {
	var f drainFlags
	var read bool
	cmd := &cobra.Command{
		Use:   "preview -l SELECTOR",
		Short: "Show what a drain would do now, writing nothing",
		Long: `Show which pods a drain of this selector would take now, which it would skip
and why (not a gateway, not running, already held by another drain), each
gated pod's readiness, and each target's gateway state and marker, read
through pods/exec with your own rights. Nothing is written: not a
GatewayDrain, not a file. Without the right to exec into the pods, the
gateways are not read and the preview says so.`,
		Example: `  kubectl hermes-drain preview -l app=hermes-gateway
  kubectl hermes-drain preview -l app=hermes-gateway --read=false -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			data, err := o.preview(cmd.Context(), f, read)
			if err != nil {
				return err
			}
			if f.output != "" {
				return printData(o.Out, f.output, data)
			}
			return printPreview(o, data)
		},
	}
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "Label selector of the gateway pods (required)")
	cmd.Flags().StringVar(&f.container, "container", "", "The gateway container, as drain --container")
	cmd.Flags().BoolVar(&read, "read", true, "Read each target's gateway state and marker through pods/exec")
	outputFlag(cmd, &f.output)
	_ = cmd.MarkFlagRequired("selector")
	return cmd
}

func (o *options) preview(ctx context.Context, f drainFlags, read bool) (*previewData, error) {
	gwd, err := newGatewayDrain(f)
	if err != nil {
		return nil, err
	}
	c, key, err := o.target("")
	if err != nil {
		return nil, err
	}
	ns := key.Namespace
	sel, err := metav1.LabelSelectorAsSelector(&gwd.Spec.Selector)
	if err != nil {
		return nil, err
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	holders, err := standingTargets(ctx, c, ns, time.Now())
	if err != nil {
		return nil, err
	}
	data := &previewData{Namespace: ns, Selector: sel.String(), Pods: make([]previewPod, len(pods.Items))}
	for i := range pods.Items {
		pod := &pods.Items[i]
		row := &data.Pods[i]
		row.Name, row.Skipped = pod.Name, drain.Skipped(gwd, pod)
		row.Target = row.Skipped == ""
		row.Ready = gatewaypod.ConditionStatus(pod, corev1.PodReady)
		if gatewaypod.Gated(pod) {
			row.Gate = gatewaypod.ConditionStatus(pod, drainv1.ReadinessGate)
		}
		for _, h := range holders {
			if drain.Holds(h.target, pod) {
				row.HeldBy = h.drain
			}
		}
		if row.Target {
			data.Targets++
		}
	}
	if data.NotRead = o.mayNotRead(ctx, c, ns, read); data.NotRead == "" {
		data.Read = true
		err = o.readGateways(ctx, gwd, pods.Items, data.Pods)
	}
	return data, err
}

type holder struct {
	drain  string
	target drainv1.Target
}

// standingTargets lists the targets of the namespace's drains that still stand.
func standingTargets(ctx context.Context, c client.Client, ns string, now time.Time) ([]holder, error) {
	var drains drainv1.GatewayDrainList
	if err := c.List(ctx, &drains, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var held []holder
	for i := range drains.Items {
		if !drain.Stands(&drains.Items[i], now) {
			continue
		}
		targets, err := drain.ListTargets(ctx, c, &drains.Items[i])
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			held = append(held, holder{drains.Items[i].Name, t})
		}
	}
	return held, nil
}

// mayNotRead says why the gateways are not read, or "" when they are: the
// user turned reads off, or may not exec into the namespace's pods.
func (o *options) mayNotRead(ctx context.Context, c client.Client, ns string, read bool) string {
	if !read {
		return "--read=false"
	}
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"},
	}}
	if err := c.Create(ctx, review); err != nil {
		return "cannot check the right to exec into pods: " + err.Error()
	}
	if !review.Status.Allowed {
		return "you may not exec into the pods of " + ns + " (create pods/exec)"
	}
	return ""
}

// readGateways reads each target's HERMES_HOME through pods/exec, as the
// operator's Read does: the in-container program's read writes nothing.
func (o *options) readGateways(ctx context.Context, gwd *drainv1.GatewayDrain, pods []corev1.Pod, rows []previewPod) error {
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	runner, err := transport.NewExecRunner(cfg, 10*time.Second)
	if err != nil {
		return err
	}
	program := transport.NewProgram(runner, "/proc")
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(readers)
	for i := range pods {
		if !rows[i].Target {
			continue
		}
		g.Go(func() error {
			pod, row := &pods[i], &rows[i]
			// Where the drain would call it.
			target, home, err := gatewaypod.Locate(pod, gwd.Spec.Container, gwd.Spec.HermesHome)
			if err != nil {
				row.ReadError = err.Error()
				return nil
			}
			obs, err := program.Read(ctx, target, home)
			if err != nil {
				row.ReadError = err.Error()
				return nil
			}
			st := calls.Describe(obs, time.Now())
			row.Home = &st
			return nil
		})
	}
	return g.Wait()
}

func printPreview(o *options, data *previewData) error {
	how := "gateways read through pods/exec as you"
	if !data.Read {
		how = "gateways not read: " + data.NotRead
	}
	fmt.Fprintf(o.Out, "A drain of %s in %s would take %d of %d matching pods now (nothing written; %s).\n\n",
		data.Selector, data.Namespace, data.Targets, len(data.Pods), how)
	tw := printers.GetNewTabWriter(o.Out)
	fmt.Fprintln(tw, "POD\tDRAIN\tREADY\tGATE\tGATEWAYS\tGATEWAY\tAGENTS\tMARKER\tNOTE")
	for _, p := range data.Pods {
		would, gateways, gateway, agents, mark := "no", "-", "-", "-", "-"
		if p.Target {
			would = "yes"
		}
		var notes []string
		if p.Skipped != "" {
			notes = append(notes, p.Skipped)
		}
		if p.HeldBy != "" {
			notes = append(notes, "held by GatewayDrain "+p.HeldBy+": a new drain waits for it (Conflict)")
		}
		switch {
		case p.ReadError != "":
			notes = append(notes, "not read: "+p.ReadError)
		case p.Home != nil && p.Home.Gateway.Problem != "":
			notes = append(notes, p.Home.Gateway.Problem)
			mark = p.Home.Marker.Words()
		case p.Home != nil:
			gateway, agents, mark = marker.Excerpt(p.Home.Gateway.State, drainview.WordWidth), fmt.Sprint(p.Home.Gateway.ActiveAgents), p.Home.Marker.Words()
		}
		if p.Home != nil {
			gateways = fmt.Sprint(1 + len(p.Home.Profiles))
			for _, prof := range p.Home.Profiles {
				notes = append(notes, "profile "+prof.Name+": "+prof.Gateway.Words())
			}
			if p.Home.Unlisted > 0 {
				notes = append(notes, fmt.Sprintf("%d more profile homes not looked into", p.Home.Unlisted))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, would, dash(p.Ready), dash(p.Gate), gateways, gateway, agents,
			marker.Excerpt(mark, drainview.MessageWidth/2), marker.Excerpt(strings.Join(notes, "; "), drainview.MessageWidth))
	}
	return tw.Flush()
}

// dash is a pod condition's status for a cell: anyone who may update the
// pod's status may have written it.
func dash(s corev1.ConditionStatus) string {
	if s == "" {
		return "-"
	}
	return marker.Excerpt(string(s), drainview.WordWidth)
}
