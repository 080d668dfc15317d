package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(p)/100*float64(len(s)))) - 1 // nearest rank
	return s[max(i, 0)].Round(time.Millisecond)
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 50) }

func medianFloat(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[(len(s)-1)/2]
}

// report logs the results and, with BENCH_OUT, writes results.md,
// results.json and markers-vs-n.svg there.
func report(t *testing.T, cfg config, results []*sizeResult) error {
	md := markdown(cfg, results)
	t.Log("\n" + md)
	if cfg.out == "" {
		return nil
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	for name, content := range map[string][]byte{
		"results.md":       []byte(md),
		"results.json":     raw,
		"markers-vs-n.svg": []byte(plot(results)),
	} {
		if err := os.WriteFile(filepath.Join(cfg.out, name), content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func markdown(cfg config, results []*sizeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %d CPUs, %s/%s, %s; median of %d run(s) per size.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), cfg.runs)

	b.WriteString("### Time until every marker is written\n\n")
	b.WriteString("| N | kubectl exec loop¹ | kubectl exec, xargs -P 16 | client-go parallel exec² | operator | operator vs loop | operator vs client-go³ |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		op := median(r.Markers[theOperator])
		switch {
		case len(r.Markers[theOperator]) == 0: // above BENCH_EXEC_UP_TO
		case len(r.Markers[clientGo]) == 0: // above BENCH_BASELINES_UP_TO
			fmt.Fprintf(&b, "| %d | - | - | - | %s | - | - |\n", r.N, op)
		default:
			fmt.Fprintf(&b, "| %d | %s | %s | %s (at %d) | %s | %.1fx faster | %.0f%% |\n", r.N,
				median(r.Markers[kubectlSequential]), median(r.Markers[kubectlParallel]),
				median(r.Markers[clientGo]), r.ClientGoConcurrency, op,
				median(r.Markers[kubectlSequential]).Seconds()/op.Seconds(),
				100*median(r.Markers[clientGo]).Seconds()/op.Seconds())
		}
	}
	b.WriteString("\n¹ run on the first min(N, " + fmt.Sprint(cfg.seqSample) + ") pods and scaled to N: one call after another is linear.  \n")
	b.WriteString("² the operator's transport and nothing else, at the concurrency that was fastest (tried 8 to 128).  \n")
	b.WriteString("³ throughput relative to client-go's: its time divided by the operator's.\n\n")

	b.WriteString("### The operator's drain\n\n")
	b.WriteString("| N | Drained, no turns | Drained, 2 turns of " + turnDuration.String() + " | API requests per target | of which exec | exec/min on idle pods | gate → False p50 / p99 | gate → True p50 / p99 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		if len(r.Drained) == 0 { // above BENCH_EXEC_UP_TO
			continue
		}
		withTurns := "-"
		if len(r.DrainedWithTurns) > 0 {
			withTurns = median(r.DrainedWithTurns).String()
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.2f | %.2f | %.0f | %s | %s |\n", r.N,
			median(r.Drained), withTurns, medianFloat(r.RequestsPerTarget), medianFloat(r.ExecsPerTarget),
			r.IdleExecsPerMinute, p50p99(r.GateDown), p50p99(r.GateUp))
	}
	b.WriteString("\n### The operator through agents (no pods/exec)\n\n")
	b.WriteString("| N | every marker | Drained, no turns | API requests per target | peak RSS | /readyz → not ready p50 / p99 | /readyz → ready p50 / p99 |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %d | %s | %s | %.2f | %s | %s | %s |\n", r.N, median(r.Markers[throughAgents]), median(r.DrainedAgents),
			medianFloat(r.RequestsPerTargetAgents), mib(r.MemoryAgents.Peak), p50p99(r.ProbeDown), p50p99(r.ProbeUp))
	}
	b.WriteString("\n### The manager's memory\n\n")
	b.WriteString("Peak RSS (VmHWM), and of it the executable's own pages (RssFile: code and read-only data, clean and reclaimable).\n\n")
	b.WriteString("| pods in the namespace | gateways drained | cached | peak RSS | of which the binary |\n|---|---|---|---|---|\n")
	for _, r := range results {
		if len(r.Drained) == 0 { // no drain through exec at this size
			continue
		}
		fmt.Fprintf(&b, "| %d | %d | every pod, through the runs above | %s | %s |\n", r.N, r.N, mib(r.Memory.Peak), mib(r.Memory.Binary))
		if r.MemoryPods > 0 {
			fmt.Fprintf(&b, "| %d | %d | every pod, fresh manager | %s | %s |\n", r.MemoryPods, r.N, mib(r.MemoryAllPods.Peak), mib(r.MemoryAllPods.Binary))
			fmt.Fprintf(&b, "| %d | %d | the gateways (`--pod-selector`), fresh manager | %s | %s |\n", r.MemoryPods, r.N, mib(r.MemorySelected.Peak), mib(r.MemorySelected.Binary))
		}
	}
	b.WriteString("\nRequests per target, last run, from the GatewayDrain's creation to Drained:\n\n")
	for _, r := range results {
		if len(r.Drained) > 0 {
			fmt.Fprintf(&b, "- N=%d: %s\n", r.N, r.Requests)
		}
	}
	b.WriteString("\nWhere the CPU went, last run (process CPU time, reaped children included, per exec):\n\n")
	for _, r := range results {
		if r.CPUClientGo != "" {
			fmt.Fprintf(&b, "- N=%d, client-go: %s\n", r.N, r.CPUClientGo)
		}
		if r.CPUOperator != "" {
			fmt.Fprintf(&b, "- N=%d, operator: %s\n", r.N, r.CPUOperator)
		}
	}
	return b.String()
}

// p50p99 is "p50 / p99", or "-" when nothing was measured.
func p50p99(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s / %s", percentile(ds, 50), percentile(ds, 99))
}

func mib(bytes int64) string { return fmt.Sprintf("%.0f MiB", float64(bytes)/(1<<20)) }

// plot draws time to all markers against N, both on log scales, one line per
// contender.
func plot(results []*sizeResult) string {
	const w, h, left, right, top, bottom = 640, 400, 70, 210, 20, 50
	colours := map[string]string{kubectlSequential: "#d62728", kubectlParallel: "#ff7f0e", clientGo: "#2ca02c", theOperator: "#1f77b4", throughAgents: "#9467bd"}
	minN, maxN, minT, maxT := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, r := range results {
		minN, maxN = math.Min(minN, float64(r.N)), math.Max(maxN, float64(r.N))
		for _, who := range contenders {
			if len(r.Markers[who]) == 0 {
				continue
			}
			s := median(r.Markers[who]).Seconds()
			minT, maxT = math.Min(minT, s), math.Max(maxT, s)
		}
	}
	lo, hi := math.Floor(math.Log10(minN)), math.Ceil(math.Log10(maxN))
	tlo, thi := math.Floor(math.Log10(minT)), math.Ceil(math.Log10(maxT))
	if hi == lo {
		hi++
	}
	if thi == tlo {
		thi++
	}
	x := func(n float64) float64 { return left + (math.Log10(n)-lo)/(hi-lo)*(w-left-right) }
	y := func(s float64) float64 { return h - bottom - (math.Log10(s)-tlo)/(thi-tlo)*(h-top-bottom) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	for e := lo; e <= hi; e++ {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n",
			x(math.Pow(10, e)), top, x(math.Pow(10, e)), h-bottom, x(math.Pow(10, e)), h-bottom+16, math.Pow(10, e))
	}
	for e := tlo; e <= thi; e++ {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g s</text>`+"\n",
			left, y(math.Pow(10, e)), w-right, y(math.Pow(10, e)), left-6, y(math.Pow(10, e))+4, math.Pow(10, e))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">gateway pods (N)</text>`+"\n", (left+w-right)/2, h-12)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">time until every marker is written</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2)
	for i, who := range contenders {
		var pts []string
		for _, r := range results {
			if len(r.Markers[who]) > 0 { // the baselines stop at BENCH_BASELINES_UP_TO
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(r.N)), y(median(r.Markers[who]).Seconds())))
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), colours[who])
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], colours[who])
		}
		ly := top + 10 + i*20
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+10, ly, w-right+30, ly, colours[who], w-right+36, ly+4, who)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
