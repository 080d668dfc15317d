package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	drainv1 "github.com/hermes-agent/hermes-drain-operator/api/v1alpha1"
)

const rootExamples = `  # What would a drain of these pods do? (writes nothing)
  kubectl hermes-drain preview -l app=hermes-gateway

  # Drain them and watch until every one is drained (exit 0), stalls (2) or the wait gives up (3)
  kubectl hermes-drain drain -l app=hermes-gateway --name before-upgrade --wait

  # Restart them drained, a tenth at a time, the rest serving (an OnDelete StatefulSet's upgrade)
  kubectl hermes-drain restart -l app=hermes-gateway --max-unavailable 10% --wait

  # What is each pod of the drain doing, and what blocks it?
  kubectl hermes-drain status before-upgrade

  # Give the gateways back
  kubectl hermes-drain cancel before-upgrade --wait`

const exitCodes = `
Exit codes: 0 done; 1 bad arguments or an API error; 2 the drain stalled
(deadline passed, no targets, bad selector) or was cancelled while waited on;
3 the wait gave up (--timeout) while the drain still progresses. A non-zero
exit names the pods that block the drain.`

// options is what every subcommand shares: the standard kubectl flags, the
// streams, and the clients built from them.
type options struct {
	config *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// poll is how often a wait re-reads the drain.
	poll time.Duration
	// live: the output is a terminal, where a wait redraws the drain's
	// table in place; anywhere else (a pipe, a file, CI) it appends lines.
	live bool
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{config: genericclioptions.NewConfigFlags(true), IOStreams: streams, poll: time.Second, live: isTerminal(streams.Out)}
	root := &cobra.Command{
		Use:   "hermes-drain",
		Short: "Drain Hermes gateways through GatewayDrains",
		Long: `Drain Hermes gateways before a disruptive action: new turns are refused,
in-flight turns finish. Each command acts through the GatewayDrain resource
with your own credentials; the hermes-drain-operator does the work.` + "\n" + exitCodes,
		Example:       rootExamples,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl hermes-drain"},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.config.AddFlags(root.PersistentFlags())
	root.AddCommand(newDrainCommand(o), newRestartCommand(o), newStatusCommand(o), newWaitCommand(o), newCancelCommand(o), newPreviewCommand(o))
	return root
}

// restConfig is the user's client configuration from the kubectl flags.
func (o *options) restConfig() (*rest.Config, error) {
	return o.config.ToRESTConfig()
}

// target is a client for GatewayDrains, TargetSlices and pods, and the key
// of the drain of this name (which may be "") in the namespace: -n, else the
// kubeconfig context's.
func (o *options) target(name string) (client.Client, client.ObjectKey, error) {
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, client.ObjectKey{}, err
	}
	c, err := o.client()
	return c, client.ObjectKey{Namespace: ns, Name: name}, err
}

func (o *options) client() (client.Client, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := drainv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// outputFlag adds -o for commands whose output is data.
func outputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "", "Output format: json or yaml (default: a table)")
}

func checkOutput(output string) error {
	switch output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: use json or yaml", output)
}

// printData writes v as JSON or YAML.
func printData(w io.Writer, output string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if output == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
	} else {
		data = append(data, '\n')
	}
	_, err = w.Write(data)
	return err
}

// sleep waits for the next poll, or returns ctx's error.
func (o *options) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.poll):
		return nil
	}
}
