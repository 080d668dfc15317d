package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
)

// uninstallFlags configure `manager uninstall`.
type uninstallFlags struct {
	// deployment is the operator's Deployment, namespace/name.
	deployment      string
	watchNamespaces []string
	timeout         time.Duration
}

func parseUninstallFlags(args []string) (uninstallFlags, error) {
	var f uninstallFlags
	fs := flag.NewFlagSet("manager uninstall", flag.ContinueOnError)
	fs.StringVar(&f.deployment, "deployment", "", "the operator's Deployment (namespace/name), scaled to zero before the gates are released")
	fs.Func("watch-namespaces", "comma-separated namespaces the operator watches (default: all)", func(v string) error {
		f.watchNamespaces = splitNamespaces(v)
		return nil
	})
	fs.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long the operator is given to remove the markers of the GatewayDrains before they are let go without it")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if ns, name, ok := strings.Cut(f.deployment, "/"); !ok || ns == "" || name == "" {
		return f, fmt.Errorf("--deployment %q must be namespace/name", f.deployment)
	}
	return f, nil
}

// uninstall is what the chart's pre-delete hook runs while the operator
// still runs, so that uninstalling it strands no gateway: every GatewayDrain
// is deleted and the operator removes their markers; then the operator is
// scaled to zero, so nothing writes the gates any more; then every gated
// pod's gate that is not True is turned True (docs/readiness.md).
func uninstall(ctx context.Context, f uninstallFlags) error {
	log := ctrl.Log.WithName("uninstall")
	scheme, err := newScheme()
	if err != nil {
		return err
	}
	c, err := client.New(ctrl.GetConfigOrDie(), client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	left, err := withdrawAll(ctx, c, f.watchNamespaces, f.timeout)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		log.Info("let go without removing their markers (each gateway ignores its marker once restarted)", "gatewayDrains", left)
	}
	log.Info("every GatewayDrain withdrawn")
	ns, name, _ := strings.Cut(f.deployment, "/")
	if err := scaleToZero(ctx, c, ns, name, f.timeout); err != nil {
		return err
	}
	log.Info("the operator stopped", "deployment", f.deployment)
	released, err := podreadiness.ReleaseGates(ctx, c, f.watchNamespaces, time.Now())
	log.Info("readiness gates released", "pods", released)
	return err
}

// scaleToZero scales the Deployment to zero and waits, at most timeout,
// until none of its pods is left.
func scaleToZero(ctx context.Context, c client.Client, namespace, name string, timeout time.Duration) error {
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dep); err != nil {
		return fmt.Errorf("the operator's Deployment: %w", err)
	}
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Spec.Replicas = new(int32)
	if err := c.Patch(ctx, dep, patch); err != nil {
		return fmt.Errorf("scaling the operator to zero: %w", err)
	}
	selector, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		var pods corev1.PodList
		err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: selector})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		return errors.Join(errors.New("the operator's pods did not stop"), err)
	}
	return nil
}
