package main

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

func TestCacheOptionsFollowFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		namespaces []string // cached namespaces; none: all
		cached     map[string]bool
	}{
		{name: "defaults: every pod of every namespace",
			cached: map[string]bool{"app=hermes-gateway": true, "app=web": true, "": true}},
		{name: "a pod selector and namespaces",
			args:       []string{"--pod-selector=app in (hermes-gateway, hermes-canary)", "--watch-namespaces=a, b,"},
			namespaces: []string{"a", "b"},
			cached:     map[string]bool{"app=hermes-gateway": true, "app=hermes-canary": true, "app=web": false, "": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, err := parseFlags(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			opts := cacheOptions(f)
			if got := slices.Sorted(maps.Keys(opts.DefaultNamespaces)); !slices.Equal(got, tc.namespaces) {
				t.Errorf("namespaces %v, want %v", got, tc.namespaces)
			}
			var pods *cache.ByObject
			for obj, c := range opts.ByObject {
				if _, ok := obj.(*corev1.Pod); ok {
					pods = &c
				}
			}
			if pods == nil || pods.Transform == nil {
				t.Fatalf("pods are cached untrimmed: %+v", pods)
			}
			for podLabels, want := range tc.cached {
				set, _ := labels.ConvertSelectorToLabelsMap(podLabels)
				if got := pods.Label == nil || pods.Label.Matches(set); got != want {
					t.Errorf("pod labelled %q cached: %v, want %v", podLabels, got, want)
				}
			}
		})
	}
}

func TestBadPodSelectorIsRefused(t *testing.T) {
	_, _, err := parseFlags([]string{"--pod-selector=app in (a"})
	if err == nil || !strings.Contains(err.Error(), "pod-selector") {
		t.Fatalf("error %v, want one that names --pod-selector", err)
	}
}

// Zero or negative durations and concurrencies are refused at start, with a
// message naming the flag (item D17).
func TestBadFlagValuesAreRefusedNamingTheFlag(t *testing.T) {
	for _, arg := range []string{
		"--exec-concurrency=0", "--poll-interval=0s", "--idle-poll-interval=-1s", "--refresh-interval=0s",
		"--refresh-interval=55m", "--release-timeout=-5m", "--readiness-fast-interval=0s", "--readiness-interval=0s",
		"--readiness-keep-last-for=0s", "--readiness-concurrency=-1", "--orphan-sweep-interval=0s", "--exec-timeout=0s", "--max-concurrent-reconciles=0",
		"--graceful-shutdown-timeout=0s", "--leader-elect-retry-period=-1s", "--leader-elect-renew-deadline=20s",
	} {
		flag, _, _ := strings.Cut(arg, "=")
		if _, _, err := parseFlags([]string{arg}); err == nil || !strings.Contains(err.Error(), flag+" ") {
			t.Errorf("%s: error %v, want one naming %s", arg, err, flag)
		}
	}
	if _, _, err := parseFlags(nil); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
}
