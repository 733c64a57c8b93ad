package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mesp-project/mesp/funcid"
	"github.com/mesp-project/mesp/shard"
)

func init() {
	register("shard-owner", "print which replica of a fleet of --replicas owns each function (ids as arguments, or one per line on stdin)", runShardOwner)
}

// runShardOwner prints "<function> <replica>" for each function id, the
// replica shard.Owner gives it: what a platform needs to point each
// function's ScaledObject (or its own calls) at the replica that holds it.
func runShardOwner(_ context.Context, args []string) error {
	fs := pflag.NewFlagSet("shard-owner", pflag.ContinueOnError)
	replicas := fs.Int("replicas", 0, "replicas the fleet is split over (shard.replicas; the StatefulSet's spec.replicas)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *replicas < 1 {
		return fmt.Errorf("--replicas %d: want at least 1", *replicas)
	}
	return shardOwners(fs.Args(), os.Stdin, os.Stdout, *replicas)
}

// shardOwners writes each id's owner; with no ids, it reads them from in,
// one per line.
func shardOwners(ids []string, in io.Reader, out io.Writer, replicas int) error {
	w := bufio.NewWriter(out)
	one := func(id string) error {
		if err := funcid.Validate(id); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%s %d\n", id, shard.Owner(id, replicas))
		return err
	}
	if len(ids) > 0 {
		for _, id := range ids {
			if err := one(id); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	sc := bufio.NewScanner(in)
	for line := 1; sc.Scan(); line++ {
		id := strings.TrimSpace(sc.Text())
		if id == "" {
			continue
		}
		if err := one(id); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return w.Flush()
}
