package podreadiness

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/gatewaypod"
)

// ReasonOperatorUninstalled is the reason of a gate released because the
// operator is going away.
const ReasonOperatorUninstalled = "OperatorUninstalled"

// ReleaseGates turns True the gate of every gated pod of the namespaces
// (all when none are given) whose gate is not True, and says how many it
// turned. It is what uninstalling the operator does once the operator has
// stopped: nobody keeps the gates any more, and a gate left False would
// keep its pod out of its Services for good. True is the only safe value
// without a reader (as aws-load-balancer-controller sets its gates True
// when it lets go of them): a gateway that really does not serve is then
// left to its own container probes.
func ReleaseGates(ctx context.Context, c client.Client, namespaces []string, now time.Time) (int, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	released := 0
	var errs []error
	for _, ns := range namespaces {
		opts := &client.ListOptions{Namespace: ns, Limit: 500}
		for {
			var pods corev1.PodList
			if err := c.List(ctx, &pods, opts); err != nil {
				return released, fmt.Errorf("listing pods: %w", err)
			}
			for i := range pods.Items {
				pod := &pods.Items[i]
				if !gatewaypod.Gated(pod) || gatewaypod.ConditionStatus(pod, drainv1.ReadinessGate) == corev1.ConditionTrue {
					continue
				}
				err := patchGate(ctx, c, pod, corev1.PodCondition{
					Type: drainv1.ReadinessGate, Status: corev1.ConditionTrue, Reason: ReasonOperatorUninstalled,
					Message:            "the hermes-drain operator was uninstalled: this gate no longer follows the gateway (remove the readiness gate from the pod template)",
					LastTransitionTime: metav1.NewTime(now),
				})
				if err != nil {
					errs = append(errs, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err))
					continue
				}
				released++
			}
			if opts.Continue = pods.Continue; opts.Continue == "" {
				break
			}
		}
	}
	return released, errors.Join(errs...)
}
