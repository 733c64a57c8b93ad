package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mesp-project/mesp/provision"
)

func init() {
	register("silence-frontier", "print what holding the silent copies to 1% of their minutes warm costs the validation functions' platform mix, with a second threshold by idle minutes", runSilenceFrontier)
}

// runSilenceFrontier prints provision.SilenceFrontier on the validation
// functions' platform mix, as served; it writes nothing.
func runSilenceFrontier(ctx context.Context, args []string) error {
	mix, err := validationMix(ctx, "silence-frontier", args)
	if err != nil {
		return err
	}
	grid := append([]float64{0.0005, 0.001, 0.002}, provision.ThresholdGrid...)
	froms := []int{1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 45, 60, provision.End}
	points, err := provision.SilenceFrontier(mix.active, mix.silent, grid, froms, provision.MaxSilentShare)
	if err != nil {
		return err
	}
	fmt.Printf("silence-frontier: %d validation functions and a silent copy of each; silent copies warm at most %.0f%% of their minutes, idle at most keepalive10's\n",
		len(mix.fns), 100*provision.MaxSilentShare)
	for _, p := range points {
		from := fmt.Sprintf("from %d idle minutes", p.From)
		if p.From == provision.End {
			from = "one threshold"
		}
		if !p.Found {
			fmt.Printf("%-22s none qualifies\n", from)
			continue
		}
		fmt.Printf("%-22s threshold %.4f, silent %.4f: %d cold starts (%.3fx keepalive10's %d), idle %.3fx, silent copies warm %.2f%%\n",
			from, p.Threshold, p.Silent, p.ColdStarts, float64(p.ColdStarts)/float64(p.ReferenceColdStarts), p.ReferenceColdStarts,
			float64(p.IdleMinutes)/float64(p.ReferenceIdleMinutes), 100*float64(p.SilentIdleMinutes)/float64(p.SilentMinutes))
	}
	fmt.Fprintf(os.Stderr, "silence-frontier: %s\n", time.Since(mix.start).Round(time.Second))
	return nil
}
