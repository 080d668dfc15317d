package transport

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
)

// ExecRunner runs the command in the pod's container through the API
// server's pods/exec, over WebSocket with a SPDY fallback. The command must
// not wait for the end of its stdin: some exec implementations (kwok's)
// never deliver it.
type ExecRunner struct {
	config  *rest.Config
	client  kubernetes.Interface
	timeout time.Duration
}

// NewExecRunner returns an ExecRunner; each call is bounded by timeout.
func NewExecRunner(config *rest.Config, timeout time.Duration) (*ExecRunner, error) {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	return &ExecRunner{config: config, client: client, timeout: timeout}, nil
}

func (r *ExecRunner) Run(ctx context.Context, pod calls.Pod, argv []string, stdin []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req := r.client.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: pod.Container,
			Command:   argv,
			Stdin:     stdin != nil,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)

	ws, err := remotecommand.NewWebSocketExecutor(r.config, "GET", req.URL().String())
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(r.config, "POST", req.URL())
	if err != nil {
		return nil, err
	}
	executor, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, err
	}
	ctx, abort := context.WithCancel(ctx)
	defer abort()
	stdout, stderr := outputs(abort)
	opts := remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr}
	if stdin != nil {
		opts.Stdin = bytes.NewReader(stdin)
	}
	if err := executor.StreamWithContext(ctx, opts); err != nil {
		return stdout.Bytes(), fmt.Errorf("exec in %s: %w", pod, failed(err, stdout, stderr))
	}
	return stdout.Bytes(), nil
}
