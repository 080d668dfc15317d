package chart

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// The operator's packages register their metrics as the manager's do.
	_ "github.com/hermes-agent/hermes-drain-operator/controllers/gatewaydrain"
	_ "github.com/hermes-agent/hermes-drain-operator/controllers/orphans"
	_ "github.com/hermes-agent/hermes-drain-operator/controllers/podreadiness"
	_ "github.com/hermes-agent/hermes-drain-operator/internal/transport"
)

// rule renders the chart's PrometheusRule with these values and returns it.
func rule(t *testing.T, set ...string) *unstructured.Unstructured {
	t.Helper()
	rules := ofKind(render(t, append([]string{"prometheusRule.enabled=true"}, set...)...), "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules rendered", len(rules))
	}
	return rules[0]
}

// The alerts, rendered with the default thresholds, pass promtool's check
// and its unit tests (testdata/alerts_test.yaml): each alert fires when it
// must, and not for a drain that is Drained, cancelled or too young, for
// targets that healed, after its window, or for gates not read yet.
func TestAlertsFireWhenTheyMust(t *testing.T) {
	if n := len(ofKind(render(t), "PrometheusRule")); n != 0 {
		t.Errorf("%d PrometheusRules rendered by default", n)
	}
	r := rule(t, "prometheusRule.labels.release=kube-prometheus-stack")
	if r.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("labels %v lack prometheusRule.labels", r.GetLabels())
	}
	groups, _, _ := unstructured.NestedSlice(r.Object, "spec", "groups")
	raw, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string][]byte{"rules.yaml": raw, "alerts_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promtool, err := filepath.Abs(filepath.Join(bin, "promtool"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir // promtool finds the rules beside the tests
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The thresholds are values; the one compared with a drain's age is in
// seconds, which Prometheus 2 reads too.
func TestAlertThresholdsAreValues(t *testing.T) {
	r := rule(t, "prometheusRule.drainNotDrainedAfter=1h30m", "prometheusRule.targetsFailedFor=5m",
		"prometheusRule.markersLeftWindow=2h", "prometheusRule.readinessGatesUnknownFor=3m")
	raw, _ := yaml.Marshal(r.Object["spec"])
	for _, want := range []string{"created_timestamp_seconds) > 5400\n", "for: 5m", "[2h]", "for: 3m"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the rules lack %q:\n%s", want, raw)
		}
	}
	for set, want := range map[string]string{
		"prometheusRule.drainNotDrainedAfter=soon":          "/prometheusRule/drainNotDrainedAfter",
		"prometheusRule.targetsFailedFor=500ms":             "/prometheusRule/targetsFailedFor",
		"prometheusRule.enabled=true,metrics.enabled=false": "needs metrics.enabled",
	} {
		out, err := helm("template", "hdo", chart, "--kube-version", "1.36.3", "--set", set)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("--set %s: %v, output should name %s:\n%s", set, err, want, out)
		}
	}
}

// dashboard is the chart's Grafana dashboard.
type dashboard struct {
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chart, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d, raw
}

// The dashboard reads its data source from a variable, every panel has a
// unique id and a query, and the ConfigMap that carries it to Grafana's
// sidecar is rendered only when asked, labelled as asked, where asked.
func TestTheDashboardIsForGrafanasSidecar(t *testing.T) {
	d, raw := readDashboard(t)
	if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Type != "datasource" {
		t.Errorf("the first variable should be the data source: %+v", d.Templating.List)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.Title == "" {
			t.Errorf("panel %d %q: ids must be unique, titles set", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Type != "row" && (p.Datasource.UID != "${datasource}" || len(p.Targets) == 0) {
			t.Errorf("panel %q: data source %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
	}

	if n := len(ofKind(render(t), "ConfigMap")); n != 0 {
		t.Errorf("%d ConfigMaps rendered by default", n)
	}
	cms := ofKind(render(t, "grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring", "grafanaDashboard.annotations.grafana_folder=Hermes"), "ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps", len(cms))
	}
	cm := cms[0]
	if cm.GetNamespace() != "monitoring" || cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetAnnotations()["grafana_folder"] != "Hermes" {
		t.Errorf("ConfigMap %s/%s labels %v annotations %v", cm.GetNamespace(), cm.GetName(), cm.GetLabels(), cm.GetAnnotations())
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if got := data["hermes-drain-operator.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
		t.Errorf("the ConfigMap does not hold files/dashboard.json as it is")
	}
}

// registered is every metric family the operator's packages register with
// controller-runtime's registry (the one the manager serves), with its
// labels: the registry describes every collector it holds.
func registered(t *testing.T) map[string][]string {
	t.Helper()
	described, ok := ctrlmetrics.Registry.(prometheus.Collector)
	if !ok {
		t.Fatalf("controller-runtime's registry %T cannot describe its collectors", ctrlmetrics.Registry)
	}
	descs := make(chan *prometheus.Desc)
	go func() {
		described.Describe(descs)
		close(descs)
	}()
	desc := regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{(.*)\}\}$`)
	families := map[string][]string{}
	for d := range descs {
		m := desc.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read %s", d)
		}
		families[m[1]] = strings.FieldsFunc(strings.NewReplacer("c(", "", ")", "").Replace(m[2]), func(r rune) bool { return r == ',' })
	}
	return families
}

// Every metric the alerts and the dashboard read is one the operator
// registers, with the labels they match on: a renamed metric or label
// fails here, not in an on-call's silent alert.
func TestAlertsAndDashboardReadRegisteredMetrics(t *testing.T) {
	families := registered(t)
	check := func(where, expr string) {
		found := selectors(expr)
		if len(found) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, s := range found {
			name, extra := s.metric, []string(nil)
			if _, ok := families[name]; !ok {
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base := strings.TrimSuffix(name, suffix); base != name && families[base] != nil {
						name = base
						if suffix == "_bucket" {
							extra = []string{"le"}
						}
					}
				}
			}
			labels, ok := families[name]
			if !ok {
				t.Errorf("%s: %q is not a metric the operator registers", where, s.metric)
				continue
			}
			for _, l := range s.labels {
				if !slices.Contains(labels, l) && !slices.Contains(extra, l) {
					t.Errorf("%s: %s has no label %q (%v)", where, s.metric, l, labels)
				}
			}
		}
	}

	groups, _, _ := unstructured.NestedSlice(rule(t).Object, "spec", "groups")
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			r := r.(map[string]any)
			check(r["alert"].(string), r["expr"].(string))
		}
	}
	d, _ := readDashboard(t)
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			check(p.Title, target.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+), (\w+)\)$`)
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		m := labelValues.FindStringSubmatch(q["query"].(string))
		if m == nil {
			t.Errorf("variable %s: query %q", v.Name, q["query"])
			continue
		}
		if !slices.Contains(families[m[1]], m[2]) {
			t.Errorf("variable %s: %s has no label %s", v.Name, m[1], m[2])
		}
	}
}
