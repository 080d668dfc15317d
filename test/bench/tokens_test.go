package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// What the operator's tokens for agents cost: a token per agent pod,
// requested from the API server (TokenRequest) and kept for 80% of its
// life. For each fleet size, the tokens of that many pods are requested as
// the manager does (transport.PodTokens, 16 at once, with the manager's
// token client), then asked for again, which must request none: measured
// are the requests the API server counted, the time, and the CPU each
// request cost every process on the machine.
func TestAgentTokenCost(t *testing.T) {
	cfg, err := configFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(lc.Config)
	if err != nil {
		t.Fatal(err)
	}
	tokenClient, err := kubernetes.NewForConfig(transport.TokenClientConfig(rest.CopyConfig(lc.Config)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range cfg.sizes {
		tokens, err := transport.NewPodTokens(tokenClient.CoreV1(), operatorAccount, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		requestAll := func() (requests float64, took time.Duration, cpu cpuSample) {
			before, err := scrapeAPIRequests(ctx, kube)
			if err != nil {
				t.Fatal(err)
			}
			start, cpuBefore := time.Now(), sampleCPU()
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(16)
			for i := range n {
				g.Go(func() error {
					_, err := tokens.Token(gctx, "bench-tokens", fmt.Sprintf("pod-uid-%d", i))
					return err
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			took, cpu = time.Since(start), sampleCPU().since(cpuBefore)
			after, err := scrapeAPIRequests(ctx, kube)
			if err != nil {
				t.Fatal(err)
			}
			return after.since(before).of("serviceaccounts/token"), took, cpu
		}
		requests, took, cpu := requestAll()
		t.Logf("N=%d: %.0f TokenRequests in %s (%.0f a second); %s", n, requests, took.Round(time.Millisecond), requests/took.Seconds(), cpu.perCall(n))
		if requests != float64(n) {
			t.Errorf("N=%d: %.0f TokenRequests, want one per pod", n, requests)
		}
		if again, _, _ := requestAll(); again != 0 {
			t.Errorf("N=%d: %.0f TokenRequests for tokens already held, want none", n, again)
		}
	}
}
