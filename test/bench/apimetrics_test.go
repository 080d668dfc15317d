package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// apiRequests counts the API server's requests on the resources a drain
// touches, from its own /metrics (apiserver_request_total), keyed by
// "VERB resource[/subresource]". Node leases and node status, which kwok
// renews all the time, are left out: no drain touches them.
type apiRequests map[string]float64

// drainResources are the resources the operator reads and writes
// (serviceaccounts: its tokens for agents).
var drainResources = map[string]bool{"pods": true, "gatewaydrains": true, "targetslices": true, "events": true, "serviceaccounts": true}

func scrapeAPIRequests(ctx context.Context, kube kubernetes.Interface) (apiRequests, error) {
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	counts := apiRequests{}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labelText, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		labels := parseLabels(labelText)
		if !drainResources[labels["resource"]] {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("apiserver_request_total %q: %w", line, err)
		}
		key := labels["verb"] + " " + labels["resource"]
		if sub := labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		counts[key] += n
	}
	return counts, nil
}

// parseLabels parses `a="x",b="y"` (the values here hold no quotes or commas).
func parseLabels(s string) map[string]string {
	labels := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			labels[k] = strings.Trim(v, `"`)
		}
	}
	return labels
}

// since is what happened between before and a.
func (a apiRequests) since(before apiRequests) apiRequests {
	d := apiRequests{}
	for k, v := range a {
		if n := v - before[k]; n > 0 {
			d[k] = n
		}
	}
	return d
}

func (a apiRequests) total() float64 {
	var sum float64
	for _, v := range a {
		sum += v
	}
	return sum
}

// of counts the requests for one resource/subresource ("pods/exec",
// "serviceaccounts/token"), whichever verb the API server names.
func (a apiRequests) of(resource string) float64 {
	var sum float64
	for k, v := range a {
		if strings.HasSuffix(k, " "+resource) {
			sum += v
		}
	}
	return sum
}

// perTarget lists the counts per target of n targets, largest first.
func (a apiRequests) perTarget(n int) string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return a[keys[i]] > a[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, a[k]/float64(n))
	}
	return strings.Join(parts, ", ")
}
