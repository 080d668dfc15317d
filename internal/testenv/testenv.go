// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with the operator's CRDs, for the integration tests. The binaries
// come from KUBEBUILDER_ASSETS, or the repository's bin/ that `make
// test-tools` fills; a missing binary fails the test, it never skips it.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	env    *envtest.Environment
}

// repoRoot is the repository's root, found from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// OperatorCRDs is the folder of the operator's generated CRDs.
func OperatorCRDs() string { return filepath.Join(repoRoot(), "config", "crd", "bases") }

// NewEnvironment is an envtest control plane that installs the CRDs in
// crdDirs, using the pinned binaries; the local simulated cluster builds on
// it too.
func NewEnvironment(crdDirs ...string) (*envtest.Environment, *k8sruntime.Scheme, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repoRoot(), "bin")
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, nil, fmt.Errorf("no %s in %s: run `make test-tools` (or `make test`)", bin, assets)
		}
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	if err := drainv1.AddToScheme(scheme); err != nil {
		return nil, nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}, scheme, nil
}

// Start starts a control plane with the operator's CRDs. Call Stop when done.
func Start() (*Env, error) {
	env, scheme, err := NewEnvironment(OperatorCRDs())
	if err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: env}, nil
}

// Run is a test package's TestMain body: it starts a control plane into
// *env, runs the tests and stops it.
func Run(m *testing.M, env **Env) int {
	var err error
	if *env, err = Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = (*env).Stop() }()
	return m.Run()
}

// Kubeconfig writes an admin kubeconfig for this control plane into dir,
// for kubectl and helm.
func (e *Env) Kubeconfig(dir string) (string, error) {
	admin, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	b, err := admin.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, b, 0o600)
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Namespace creates a fresh namespace for one test.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	return CreateNamespace(t, e.Client)
}

// CreateNamespace creates a namespace named after the test.
func CreateNamespace(t testing.TB, c client.Client) string {
	t.Helper()
	// Anything but a letter or a digit becomes "-": a DNS label.
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.TrimPrefix(t.Name(), "Test")))
	if len(name) > 40 {
		name = name[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(name, "-") + "-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// Eventually polls cond every 50ms until it returns true or timeout passes;
// then it fails the test with the last message cond gave.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
