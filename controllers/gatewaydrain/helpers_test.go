//go:build !unit

package gatewaydrain_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hermes-agent/hermes-drain-operator/internal/testenv"
)

func metaCondition(g *observed, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(g.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	testenv.Eventually(t, wait, func() (bool, string) {
		_, err := os.Stat(path)
		return err == nil, path + " not written"
	})
}
