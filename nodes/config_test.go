package nodes

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRepositoryClusterTomlIsValid(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("..", "cluster.toml"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := cfg.Node("gate1")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Listeners) != 2 || n.Listeners[0].Addr != "127.0.0.1:8888" || n.Listeners[1].Addr != "127.0.0.1:8889" {
		t.Fatalf("listeners = %+v", n.Listeners)
	}
	if n.Listeners[1].Codec != "raw" || n.Listeners[0].Framing != "len16" || n.Listeners[0].Codec != "msgpack" {
		t.Fatalf("listeners = %+v", n.Listeners)
	}
	if cfg.Auth.Users["admin"] == "" {
		t.Fatal("the example must carry the seed's admin account")
	}
}

func TestParseConfigRejects(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"no nodes":        `[cluster]`,
		"unknown key":     "[[node]]\nname = \"a\"\ncolour = \"red\"",
		"duplicate node":  "[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"",
		"bad name":        "[[node]]\nname = \"a@b\"",
		"bad framing":     "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"127.0.0.1:0\"\nframing = \"len24\"",
		"bad codec":       "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"127.0.0.1:0\"\ncodec = \"xml\"",
		"bad addr":        "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \"8888\"",
		"dup listener":    "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\n[[node.listener]]\nname = \"l\"\naddr = \":2\"",
		"negative window": "[[node]]\nname = \"a\"\n[[node.listener]]\nname = \"l\"\naddr = \":1\"\nwindow = -1",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseConfig([]byte(src)); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestCookieSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SKYNODE_TEST_COOKIE", "from-env")
	for _, tc := range []struct {
		c    ClusterConfig
		want string
	}{
		{ClusterConfig{Cookie: "inline"}, "inline"},
		{ClusterConfig{Cookie: "inline", CookieEnv: "SKYNODE_TEST_COOKIE"}, "from-env"},
		{ClusterConfig{CookieEnv: "SKYNODE_TEST_COOKIE", CookieFile: file}, "from-file"},
	} {
		got, err := tc.c.CookieValue()
		if err != nil || got != tc.want {
			t.Fatalf("%+v: %q, %v; want %q", tc.c, got, err, tc.want)
		}
	}
	if _, err := (ClusterConfig{CookieEnv: "SKYNODE_TEST_UNSET_COOKIE"}).CookieValue(); err == nil {
		t.Fatal("an empty cookie variable must be an error")
	}
}
