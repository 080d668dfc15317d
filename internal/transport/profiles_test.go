package transport

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermes-agent/hermes-drain-operator/internal/calls"
	"github.com/hermes-agent/hermes-drain-operator/internal/marker"
)

// A call reaches the profile homes under the root home, and only them: a
// directory named as upstream names profiles, never through a link, and a
// project writes only to those it names. Clear takes ours away from every one.
func TestCallsReachEveryProfileHomeAndNothingElse(t *testing.T) {
	proc := fakeProc(t, bootID, statLine("init", "42"))
	for impl, tr := range implementations(t, proc) {
		t.Run(impl, func(t *testing.T) {
			home, elsewhere := t.TempDir(), t.TempDir()
			for _, d := range []string{"alice", "bob", "carol", ".tmp", "Coder", "bob.deleted", "a b"} {
				if err := os.MkdirAll(filepath.Join(home, "profiles", d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(elsewhere, filepath.Join(home, "profiles", "evil")); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			obs, err := tr.Project(ctx, calls.Pod{}, home, withProfiles(request("uid-1", "me"), "alice", "bob", "evil"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range obs.Profiles {
				names = append(names, p.Name+"="+string(p.Outcome))
			}
			if got := strings.Join(names, " "); obs.ProfileCount != 3 || got != "alice=written bob=written carol=read" {
				t.Errorf("profiles %d: %s, want 3: alice=written bob=written carol=read", obs.ProfileCount, got)
			}
			for dir, want := range map[string]bool{"": true, "profiles/alice": true, "profiles/bob": true, "profiles/carol": false,
				"profiles/.tmp": false, "profiles/Coder": false, "profiles/bob.deleted": false, "profiles/a b": false} {
				if _, err := os.Stat(filepath.Join(home, dir, marker.Filename)); (err == nil) != want {
					t.Errorf("marker in %q: %v, want present=%v", dir, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(elsewhere, marker.Filename)); err == nil {
				t.Error("a marker was written through the link profiles/evil")
			}
			if obs, err = tr.Clear(ctx, calls.Pod{}, home, "uid-1"); err != nil || obs.Outcome != calls.Cleared {
				t.Fatalf("clear: %v %v", obs.Outcome, err)
			}
			for _, dir := range []string{"", "profiles/alice", "profiles/bob"} {
				if _, err := os.Stat(filepath.Join(home, dir, marker.Filename)); err == nil {
					t.Errorf("clear left the marker in %q", dir)
				}
			}
		})
	}
}

// However many profile homes there are, a call looks into MaxProfiles of
// them and counts the rest, and a project never names more.
func TestCallsLookIntoBoundedProfiles(t *testing.T) {
	proc := fakeProc(t, bootID, statLine("init", "42"))
	for impl, tr := range implementations(t, proc) {
		home := t.TempDir()
		for i := range calls.MaxProfiles + 5 {
			if err := os.MkdirAll(filepath.Join(home, "profiles", fmt.Sprintf("p%03d", i)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		obs, err := tr.Read(context.Background(), calls.Pod{}, home)
		if err != nil || obs.ProfileCount != calls.MaxProfiles+5 || len(obs.Profiles) != calls.MaxProfiles || obs.Unlisted() != 5 {
			t.Errorf("%s: %d of %d profiles, %v", impl, len(obs.Profiles), obs.ProfileCount, err)
		}
		names := make([]string, calls.MaxProfiles+1)
		for i := range names {
			names[i] = fmt.Sprintf("p%03d", i)
		}
		if _, err := tr.Project(context.Background(), calls.Pod{}, home, withProfiles(request("uid-1", "me"), names...)); err == nil {
			t.Errorf("%s: a project naming %d profiles was not refused", impl, len(names))
		}
		if _, err := tr.Project(context.Background(), calls.Pod{}, home, withProfiles(request("uid-1", "me"), "../x")); err == nil {
			t.Errorf("%s: a project naming ../x was not refused", impl)
		}
	}
}

func withProfiles(req calls.ProjectRequest, names ...string) calls.ProjectRequest {
	req.Profiles = names
	return req
}
