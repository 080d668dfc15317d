// Command demo shows the operator at work on a local simulated cluster, with
// nothing of your own: it brings up the cluster, starts the operator and
// five simulated gateways with turns in flight, applies the sample
// GatewayDrain, follows it until Drained, cancels it, shows the gateways
// running again, and tears everything down (also on Ctrl-C).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
	"github.com/hermes-agent/hermes-drain-operator/internal/drain"
	"github.com/hermes-agent/hermes-drain-operator/internal/drainview"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
	"github.com/hermes-agent/hermes-drain-operator/test/cluster"
	"github.com/hermes-agent/hermes-drain-operator/test/gatewaysim"
)

const (
	namespace = "hermes"
	drainName = "before-upgrade" // config/samples/drain_v1alpha1_gatewaydrain.yaml
	gateways  = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	begin := time.Now()
	say("bringing up the local cluster (etcd, kube-apiserver, scheduler, controllers, kwok) on 127.0.0.1")
	// Gateways check their marker every second, as upstream's do.
	lc, _, stop, err := cluster.StartWithGateways(ctx, cluster.Options{}, gatewaysim.Options{TurnDuration: 8 * time.Second}, time.Second)
	if err != nil {
		return err
	}
	defer func() { say("tearing down"); stop() }()

	say("starting the operator (bin/manager), log in %s", filepath.Join(lc.Dir, "manager.log"))
	mgr, err := lc.StartManager(filepath.Join(cluster.RepoRoot(), "bin", "manager"), "manager", lc.Kubeconfig, "--poll-interval=500ms")
	if err != nil {
		return fmt.Errorf("%w (run `make demo`)", err)
	}
	defer mgr.Stop()

	say("creating %d gateway pods with turns in flight", gateways)
	if err := lc.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	gws, err := lc.CreateGateways(ctx, namespace, gateways, map[string]string{"app": "hermes-gateway"})
	if err != nil {
		return err
	}
	for i, g := range gws {
		if err := gatewaysim.AddTurns(g.Home, i%3+1); err != nil {
			return err
		}
	}

	sample := filepath.Join(cluster.RepoRoot(), "config", "samples", "drain_v1alpha1_gatewaydrain.yaml")
	say("kubectl apply -f config/samples/drain_v1alpha1_gatewaydrain.yaml")
	if err := kubectl(lc, "-n", namespace, "apply", "-f", sample); err != nil {
		return err
	}
	if err := follow(ctx, lc, gws, "waiting for Drained", func(d *drainv1.GatewayDrain) bool {
		return meta.IsStatusConditionTrue(d.Status.Conditions, drainv1.ConditionDrained)
	}); err != nil {
		return err
	}
	say("Drained: every gateway is draining with no turns in flight. Now the disruptive work could run.")

	say(`kubectl patch gwd/%s --type=merge -p '{"spec":{"action":"Cancel"}}'`, drainName)
	if err := kubectl(lc, "-n", namespace, "patch", "gwd", drainName, "--type=merge", "-p", `{"spec":{"action":"Cancel"}}`); err != nil {
		return err
	}
	if err := follow(ctx, lc, gws, "waiting for the gateways to run again", func(d *drainv1.GatewayDrain) bool {
		if !meta.IsStatusConditionTrue(d.Status.Conditions, drainv1.ConditionReady) {
			return false
		}
		for _, g := range gws {
			if st, err := gatewaysim.ReadState(g.Home); err != nil || st.State != "running" {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	say("released: markers removed, every gateway is running again (%s in all)", time.Since(begin).Round(time.Second))
	return nil
}

// follow redraws the drain's table until done holds.
func follow(ctx context.Context, lc *cluster.Cluster, gws []*cluster.Gateway, what string, done func(*drainv1.GatewayDrain) bool) error {
	tty := isTerminal()
	last := ""
	for {
		gwd := &drainv1.GatewayDrain{}
		err := lc.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: drainName}, gwd)
		var targets []drainv1.Target
		if err == nil {
			targets, err = drain.ListTargets(ctx, lc.Client, gwd)
		}
		if err == nil {
			table := render(gwd, targets, gws, what)
			if table != last {
				if tty {
					fmt.Print("\033[H\033[2J")
				}
				fmt.Print(table)
				last = table
			}
			if done(gwd) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func render(gwd *drainv1.GatewayDrain, targets []drainv1.Target, gws []*cluster.Gateway, what string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n(%s; the table is `kubectl hermes-drain status %s`'s)\n", what, drainName)
	_ = drainview.Drain(&b, gwd, targets, time.Now())
	// And what the gateways' own files say now.
	fmt.Fprintf(&b, "\n  on disk:")
	for _, g := range gws {
		onDisk := "no marker"
		if _, err := os.Stat(filepath.Join(g.Home, marker.Filename)); err == nil {
			onDisk = "marker"
		}
		if st, err := gatewaysim.ReadState(g.Home); err == nil {
			onDisk += fmt.Sprintf(", %s/%d", st.State, st.ActiveAgents)
		}
		fmt.Fprintf(&b, "  %s: %s;", g.Name, onDisk)
	}
	b.WriteString("\n")
	return b.String()
}

func kubectl(lc *cluster.Cluster, args ...string) error {
	out, err := lc.Run("kubectl", args...)
	fmt.Print(indent(out))
	return err
}

func say(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func isTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
