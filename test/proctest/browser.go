package proctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium returns the browser to drive, skipping the test where there is
// none, except in CI (CI or SKYNODE_REQUIRE_CHROMIUM set), where it fails.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" || os.Getenv("SKYNODE_REQUIRE_CHROMIUM") != "" {
		t.Fatal("no chromium: install Debian's chromium package (.ci/run does)")
	}
	t.Skip("no chromium on this machine: apt-get install chromium to run the browser tests")
	return ""
}

// Browser starts a headless browser (Chromium) with a fresh profile and
// returns a tab's context; the browser ends with the test. Steps may run
// on contexts derived from it with a timeout.
func Browser(t testing.TB) context.Context {
	t.Helper()
	browser := Chromium(t)
	ctx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	// Start the browser now, on the tab's own context: the first run
	// binds the browser's life to its context, which must not be one of
	// the short ones a test derives for each step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	return ctx
}

// Screenshot saves a PNG of the whole page of ctx as name in the
// artifacts directory (SKYNODE_ARTIFACTS, or skynode-artifacts in the
// temporary directory) and returns its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SKYNODE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "skynode-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, name)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return shot
}
