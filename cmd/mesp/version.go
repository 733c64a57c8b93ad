package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/config"
	"github.com/mesp-project/mesp/onnx"
)

// release is this tree's version, the newest release of CHANGELOG.md
// (Keep a Changelog; versions v0.x.y). A test holds the two together.
const release = "v0.1.0"

// commit is the commit the binary was built from, set by the Makefile
// (-ldflags -X main.commit=..., git describe --always --dirty); without
// it, the revision Go's build recorded, if any.
var commit = ""

// version is the release and the commit, as `mesp version` and the
// server's build info metric say it: "v0.1.0 (commit 1a2b3c4)".
func version() string {
	c := commit
	if c == "" {
		c = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if len(rev) > 7 {
				c = rev[:7]
				if modified == "true" {
					c += "-dirty"
				}
			}
		}
	}
	return fmt.Sprintf("%s (commit %s)", release, c)
}

func init() {
	register("version", "print MESP's version and the ONNX Runtime it loaded", runVersion)
}

func runVersion(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.String("ort-library", "", "path of libonnxruntime.so (ort.library)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, fs, map[string]string{"ort-library": "ort.library"})
	if err != nil {
		return err
	}
	fmt.Printf("mesp %s\n", version())
	lib := cfg.ORT.ORTLibrary()
	v, err := onnx.Init(lib)
	if err != nil {
		return err
	}
	fmt.Printf("onnxruntime %s (%s)\n", v, lib)
	return nil
}
