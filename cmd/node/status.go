package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/nodes/cluster"
)

func statusCmd() *cobra.Command {
	var config, host string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "status",
		Short: "Print the cluster members seen by gossip, with roles, load and state",
		Long: "status joins the cluster's gossip for a moment as an observer member\n" +
			"(roles [observer]), prints what it learns, and leaves. STATE is alive,\n" +
			"suspect (failing probes: it may be declared dead soon), dead (declared dead\n" +
			"or left, recently) or absent (a node of the description that gossip does\n" +
			"not know: down long enough to be forgotten, or never started).",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := nodes.LoadConfig(config)
			if err != nil {
				return err
			}
			if len(cfg.Cluster.Seeds) == 0 {
				return fmt.Errorf("%s has no [cluster] seeds: its nodes do not gossip", config)
			}
			key, err := cfg.Cluster.GossipKeyValue()
			if err != nil {
				return err
			}
			self := fmt.Sprintf("status-%d@%s", os.Getpid(), host)
			m, err := cluster.Start(cmd.Context(), cluster.Config{
				Name: self, BindAddr: host, Seeds: cfg.Cluster.Seeds, SecretKey: key, Roles: []string{cluster.ObserverRole},
			})
			if err != nil {
				return err
			}
			defer m.Leave(time.Second)
			members := waitMembers(m, wait)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tGOSSIP HOST\tERGO PORT\tROLES\tLOAD\tGOROUTINES\tSTATE")
			seen := map[string]bool{}
			for _, mb := range members {
				if mb.Name == self {
					continue
				}
				seen[mb.Name] = true
				state := "alive"
				switch {
				case !mb.Alive:
					state = "dead"
				case mb.Suspect:
					state = "suspect"
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%d\t%s\n", mb.Name, mb.Addr, mb.ErgoPort, strings.Join(mb.Roles, ","), mb.Load, mb.Goroutines, state)
			}
			// Nodes of the description that gossip does not show: down
			// long enough to be forgotten, or never started.
			for _, nc := range cfg.Nodes {
				if name := nc.Name + "@" + nc.Host; !seen[name] && cfg.Gossip(nc) {
					fmt.Fprintf(w, "%s\t%s\t-\t%s\t-\t-\tabsent\n", name, nc.Host, strings.Join(nc.Roles, ","))
				}
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&host, "host", "127.0.0.1", "address the observer gossips from")
	c.Flags().DurationVar(&wait, "wait", 2*time.Second, "how long to listen to gossip before printing")
	return c
}

// waitMembers listens until the member list stops changing for a few
// gossip rounds, or wait passes, and returns it.
func waitMembers(m *cluster.Membership, wait time.Duration) []cluster.Member {
	deadline := time.Now().Add(wait)
	last, stable := -1, 0
	for time.Now().Before(deadline) {
		n := len(m.Members())
		if n > 1 && n == last {
			if stable++; stable >= 5 {
				break
			}
		} else {
			stable = 0
		}
		last = n
		time.Sleep(100 * time.Millisecond) // gossip rounds, not synchronisation
	}
	return m.Members()
}
