package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

func hashCmd() *cobra.Command {
	var cost int
	c := &cobra.Command{
		Use:   "hash-password [PASSWORD]",
		Short: "Print the bcrypt hash of a password for [auth.users] (reads stdin without an argument)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw string
			if len(args) == 1 {
				pw = args[0]
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("failed to read password: %w", err)
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
				return fmt.Errorf("cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return nil
		},
	}
	c.Flags().IntVar(&cost, "cost", bcrypt.DefaultCost, "bcrypt cost (4..31)")
	return c
}
