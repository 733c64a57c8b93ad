package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../.."

// docPages are the README and every page under docs/.
func docPages(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for _, f := range append(files, filepath.Join(repoRoot, "README.md")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pages[filepath.Base(f)] = string(b)
	}
	return pages
}

// TestDocsNameMakeTargetsThatExist: every `make <target>` the README and
// the docs name is a target of the Makefile.
func TestDocsNameMakeTargetsThatExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(b), -1) {
		targets[m[1]] = true
	}
	named := regexp.MustCompile("`make ([a-z][a-z0-9-]*)|^make ([a-z][a-z0-9-]*)")
	checked := 0
	for page, text := range docPages(t) {
		for _, line := range strings.Split(text, "\n") {
			for _, m := range named.FindAllStringSubmatch(line, -1) {
				target := m[1] + m[2]
				checked++
				if !targets[target] {
					t.Errorf("%s names make %s, which the Makefile does not have", page, target)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("%d make targets named in the docs: the pattern no longer finds them", checked)
	}
}

// TestDocsNameCommandsAndFlagsThatExist: every `mesp <command> --flag`
// the README and the docs name is a command of the binary with that flag
// (its --help lists it).
func TestDocsNameCommandsAndFlagsThatExist(t *testing.T) {
	call := regexp.MustCompile("(?:^|`|bin/)mesp ([a-z][a-z-]*)((?: (?:add|calibrate))?)([^`\n]*)")
	flag := regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`)
	helps := map[string]string{}
	checked := 0
	for page, text := range docPages(t) {
		for _, m := range call.FindAllStringSubmatch(text, -1) {
			name, sub, rest := m[1], strings.TrimSpace(m[2]), m[3]
			cmd, ok := commands[name]
			if !ok {
				t.Errorf("%s names mesp %s, which is not a command", page, name)
				continue
			}
			key := strings.TrimSpace(name + " " + sub)
			help, seen := helps[key]
			if !seen {
				help = helpOf(t, cmd.run, sub)
				helps[key] = help
			}
			for _, f := range flag.FindAllStringSubmatch(rest, -1) {
				checked++
				if !strings.Contains(help, "--"+f[1]) {
					t.Errorf("%s names mesp %s --%s, which its --help does not list", page, key, f[1])
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("%d flags named in the docs: the pattern no longer finds them", checked)
	}
}

// helpOf is what `mesp <command> [sub] --help` prints.
func helpOf(t *testing.T, run func(context.Context, []string) error, sub string) string {
	t.Helper()
	args := []string{"--help"}
	if sub != "" {
		args = []string{sub, "--help"}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	err = run(context.Background(), args)
	os.Stderr = stderr
	w.Close()
	var out bytes.Buffer
	if _, cerr := io.Copy(&out, r); cerr != nil {
		t.Fatal(cerr)
	}
	if !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("mesp %v: %v, want the help", args, err)
	}
	return out.String()
}

// TestConfigurationPageIsTheDefaults: every key of config.Defaults is in
// docs/configuration.md with its default, and the page names no other key.
func TestConfigurationPageIsTheDefaults(t *testing.T) {
	page := docPages(t)["configuration.md"]
	row := regexp.MustCompile("(?m)^\\| (`[a-z_.]+`(?:, `[a-z_.]+`)*) \\| ([^|]+) \\|")
	code := regexp.MustCompile("`([^`]*)`")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(page, -1) {
		var keys, defaults []string
		for _, k := range code.FindAllStringSubmatch(m[1], -1) {
			keys = append(keys, k[1])
		}
		// "`500us`, `256`", "empty (admin off)", "empty (memory only), `1m`"
		cell := strings.TrimSpace(m[2])
		for _, d := range defaultCells(cell) {
			if strings.HasPrefix(d, "empty") {
				defaults = append(defaults, "")
			} else if c := code.FindStringSubmatch(d); c != nil {
				defaults = append(defaults, c[1])
			}
		}
		for i, k := range keys {
			switch {
			case len(defaults) == len(keys):
				documented[k] = defaults[i]
			case len(defaults) == 1:
				documented[k] = defaults[0]
			default:
				t.Errorf("configuration.md: %v with defaults %q", keys, cell)
			}
		}
	}
	defaults := config.Defaults()
	for k, v := range defaults {
		want := fmt.Sprint(v)
		got, ok := documented[k]
		if !ok {
			t.Errorf("configuration.md does not document %s (default %q)", k, want)
			continue
		}
		if got != want && !(got == "" && want == "[]") {
			t.Errorf("configuration.md: %s defaults to %q, the page says %q", k, want, got)
		}
	}
	for k := range documented {
		if _, ok := defaults[k]; !ok {
			t.Errorf("configuration.md documents %s, which is not a key", k)
		}
	}
}

// defaultCells splits a defaults cell at the commas outside code spans and
// parentheses: "`500us`, `256`" is two, "empty (memory only), `1m`" two.
func defaultCells(cell string) []string {
	var out []string
	depth, inCode, start := 0, false, 0
	for i, r := range cell {
		switch {
		case r == '`':
			inCode = !inCode
		case inCode:
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			out = append(out, strings.TrimSpace(cell[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(cell[start:]))
}

// TestNoFileNarratesHowTheWorkWasOrganised: the project speaks of itself
// as a product (ONNX Runtime's inference sessions are another thing).
func TestNoFileNarratesHowTheWorkWasOrganised(t *testing.T) {
	out, err := exec.Command("git", "-C", repoRoot, "grep", "-n", "-i", "-I", "-E",
		`session [0-9]+|(this|last|next|earlier) session`, "--", ".", ":!data/").CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1: // no match
	case err != nil:
		t.Fatalf("git grep: %v: %s", err, out)
	default:
		t.Errorf("files narrate how the work was organised:\n%s", out)
	}
}

// TestReleaseIsTheChangelogs: `mesp version` names the newest release of
// CHANGELOG.md, which follows Keep a Changelog.
func TestReleaseIsTheChangelogs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`(?m)^## \[(v?[0-9]+\.[0-9]+\.[0-9]+)\] - ([0-9]{4}-[0-9]{2}-[0-9]{2})$`)
	m := heading.FindStringSubmatch(string(b))
	if m == nil || !strings.Contains(string(b), "## [Unreleased]") {
		t.Fatalf("CHANGELOG.md has no [Unreleased] section or no release heading like \"## [v0.1.0] - 2026-12-06\"")
	}
	if m[1] != release {
		t.Fatalf("CHANGELOG.md's newest release is %s, mesp says %s", m[1], release)
	}
	if v := version(); !strings.HasPrefix(v, release+" (commit ") {
		t.Fatalf("version() = %q", v)
	}
}

// TestREADMEFirstScreenAndLinks: the README's first screen links every
// page a new user looks for, and every relative link of the README and
// the docs names a file that exists.
func TestREADMEFirstScreenAndLinks(t *testing.T) {
	pages := docPages(t)
	first := strings.Join(strings.SplitN(pages["README.md"], "\n", 41)[:40], "\n")
	for _, page := range []string{"results", "api", "configuration", "kubernetes", "training", "benchmarks"} {
		if !strings.Contains(first, "(docs/"+page+".md)") {
			t.Errorf("the README's first 40 lines do not link docs/%s.md", page)
		}
	}
	if n := strings.Count(pages["README.md"], "\n"); n > 250 {
		t.Errorf("README.md has %d lines, want at most 250", n)
	}
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	checked := 0
	for page, text := range pages {
		dir := filepath.Join(repoRoot, "docs")
		if page == "README.md" {
			dir = repoRoot
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			if _, err := os.Stat(filepath.Join(dir, target)); err != nil {
				t.Errorf("%s links %s, which does not exist", page, target)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("%d relative links checked: the pattern no longer finds them", checked)
	}
}
