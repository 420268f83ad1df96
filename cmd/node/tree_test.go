package main

import (
	"strings"
	"testing"

	"github.com/skynode/skynode/apps/observer"
)

func TestTree(t *testing.T) {
	procs := []observer.Process{
		{PID: "<1>", Name: "root"},
		{PID: "<2>", Name: "pool", Parent: "<1>"},
		{PID: "<3>", Name: "orphan", Parent: "<99>"}, // its parent ended: a root
		{PID: "<4>", Name: "shard", Parent: "<2>"},
		{PID: "<5>", Name: "agent", Parent: "<4>"},
		{PID: "<6>", Name: "gate", Parent: "<1>"},
	}
	var got []string
	for _, p := range tree(procs) {
		got = append(got, strings.Repeat(".", p.depth)+p.Name)
	}
	want := "root .pool ..shard ...agent .gate orphan"
	if strings.Join(got, " ") != want {
		t.Fatalf("tree: %q, want %q", strings.Join(got, " "), want)
	}
}
