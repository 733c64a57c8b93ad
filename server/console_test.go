package server_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("MESP_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: make test installs Debian's chromium (scripts/ensure-chromium.sh)")
	}
	t.Skip("no chromium")
	return ""
}

// TestConsoleForecastInHeadlessChromium loads the console from a real
// server, runs a forecast in the explorer, and checks that the chart and
// the routed cluster appear. The screenshot is kept in out/.
func TestConsoleForecastInHeadlessChromium(t *testing.T) {
	exe := chromium(t)
	ts := start(t, "")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1100, 1400))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#clusters tbody tr`)),
		chromedp.WaitReady(chromedp.CSS(`#example option:nth-child(2)`)),
		chromedp.SetValue(chromedp.CSS(`#example`), "0"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("example").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#run`)),
		chromedp.WaitVisible(chromedp.CSS(`#result`)),
		chromedp.WaitReady(chromedp.CSS(`#chart polyline.forecast`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err1 := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#route-cluster`)))
	model, err2 := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#route-model`)))
	forecastLines, err3 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart polyline.forecast").length`))
	rows, err4 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#clusters tbody tr").length`))
	// The shipped models have p_invoke models: 60 probability bars under
	// the forecast, and a threshold line.
	bars, err6 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#pchart rect.p").length`))
	thresholds, err7 := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#pchart line.threshold").length`))
	png, err5 := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(cluster) == "" || !strings.Contains(model, "p_invoke") || forecastLines != 1 || rows == 0 || bars != 60 || thresholds != 1 {
		t.Fatalf("cluster %q, model %q, %d forecast lines, %d cluster rows, %d p bars, %d threshold lines", cluster, model, forecastLines, rows, bars, thresholds)
	}
	out := filepath.Join("..", "out")
	os.MkdirAll(out, 0o755)
	if err := os.WriteFile(filepath.Join(out, "console.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
