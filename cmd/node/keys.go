package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/skynode/skynode/nodes"
)

func gossipKeyCmd() *cobra.Command {
	var config, host, keyFile, keyEnv string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "gossip-key list|rotate|install|use|remove",
		Short: "Rotate the cluster's gossip key on every running node, without a restart",
		Long: `gossip-key joins the cluster as an observer node (as observe does) and acts on
the gossip keys of every live node, over the cluster's own links:

  list     each node's keys, as fingerprints (the first 8 bytes of their
           SHA-256), the one in use first
  rotate   the whole rotation to the key of --key-file or --key-env: install
           it everywhere, use it everywhere, then remove the old key
           everywhere, checking every node after each pass; it refuses to
           start unless every node answers and uses the same key
  install, use, remove
           one pass with the key of --key-file or --key-env (to finish a
           rotation that stopped on a node that did not answer)

A key is read from a file or an environment variable (base64 of 16, 24 or
32 bytes, as gossip_key), never from the command line, and is never shown.
It is not sent over a node link without TLS to a node off the loopback.
After a rotation, set gossip_key in the cluster's file to the new key: a
node started later, and this command next time, join with it.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"list", "rotate", "install", "use", "remove"},
		RunE: func(cmd *cobra.Command, args []string) error {
			op := args[0]
			var key []byte
			switch op {
			case "list":
			case "rotate", "install", "use", "remove":
				if (keyFile == "") == (keyEnv == "") {
					return fmt.Errorf("%s needs the key: --key-file or --key-env", op)
				}
				var err error
				key, err = nodes.ClusterConfig{GossipKeyFile: keyFile, GossipKeyEnv: keyEnv}.GossipKeyValue()
				if err != nil {
					return err
				}
			default:
				return fmt.Errorf("unknown operation %q: want list, rotate, install, use or remove", op)
			}
			n, stop, err := joinAsObserver(cmd.Context(), config, host)
			if err != nil {
				return err
			}
			defer stop()
			if !n.Joined() {
				return fmt.Errorf("no node of %s let this command in: is its gossip_key the one the cluster uses?", config)
			}
			var members []nodes.MemberKeys
			switch op {
			case "list":
				members, err = n.ClusterGossipKey(cmd.Context(), "", nil, timeout)
			case "rotate":
				members, err = n.RotateGossipKey(cmd.Context(), key, timeout)
			default:
				members, err = n.ClusterGossipKey(cmd.Context(), op, key, timeout)
			}
			showKeys(cmd.OutOrStdout(), members, n.Name())
			if err == nil && op == "rotate" {
				fmt.Fprintf(cmd.OutOrStdout(), "rotated: every node uses key %s alone; set gossip_key in %s to it\n",
					nodes.Fingerprint(key), config)
			}
			return err
		},
	}
	c.Flags().StringVar(&config, "config", "cluster.toml", "cluster description")
	c.Flags().StringVar(&host, "host", "127.0.0.1", "address this command's node listens and gossips on")
	c.Flags().StringVar(&keyFile, "key-file", "", "file holding the key (base64)")
	c.Flags().StringVar(&keyEnv, "key-env", "", "environment variable holding the key (base64)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long a node has to answer")
	return c
}

// showKeys prints each member's key fingerprints (self is this command's
// own node).
func showKeys(w io.Writer, members []nodes.MemberKeys, self string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKEYS (in use first)")
	for _, m := range members {
		name := m.Node
		if m.Node == self {
			name += " (this command)"
		}
		if m.Err != nil {
			fmt.Fprintf(tw, "%s\terror: %v\n", name, m.Err)
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", name, strings.Join(m.Keys, " "))
		}
	}
	_ = tw.Flush()
}
