package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
)

// withdrawAll deletes every GatewayDrain of the namespaces (all when none
// are given) and waits, at most timeout, for the running operator to
// remove their markers and let them go. It is what uninstalling the
// operator does first: a drain nobody will ever withdraw would hold its
// gateways for good. The drains still there after timeout are let go
// without it (their finalizer removed, so that neither they nor their
// namespace hang), and named: their markers stay, and each gateway ignores
// its marker once restarted (epoch).
func withdrawAll(ctx context.Context, c client.Client, namespaces []string, timeout time.Duration) (left []string, err error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	list := func() ([]drainv1.GatewayDrain, error) {
		var all []drainv1.GatewayDrain
		for _, ns := range namespaces {
			var drains drainv1.GatewayDrainList
			if err := c.List(ctx, &drains, client.InNamespace(ns)); err != nil {
				return nil, fmt.Errorf("listing GatewayDrains: %w", err)
			}
			all = append(all, drains.Items...)
		}
		return all, nil
	}
	drains, err := list()
	if err != nil {
		return nil, err
	}
	for i := range drains {
		if err := c.Delete(ctx, &drains[i]); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("deleting GatewayDrain %s/%s: %w", drains[i].Namespace, drains[i].Name, err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(context.Context) (bool, error) {
		if now, err := list(); err == nil { // a failed list leaves the last one standing
			drains = now
		}
		return len(drains) == 0, nil
	})
	if err == nil || !wait.Interrupted(err) {
		return nil, err
	}
	var errs []error
	for i := range drains {
		d := &drains[i]
		left = append(left, d.Namespace+"/"+d.Name)
		patch := client.MergeFrom(d.DeepCopy())
		controllerutil.RemoveFinalizer(d, gatewaydrain.Finalizer)
		if err := c.Patch(ctx, d, patch); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("letting GatewayDrain %s/%s go: %w", d.Namespace, d.Name, err))
		}
	}
	return left, errors.Join(errs...)
}
