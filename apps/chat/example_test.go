package chat_test

import (
	"fmt"

	"github.com/skynode/skynode/apps/chat"
)

// The chat's services as a program configures them from its
// cluster.toml, here a [chat] table with role = "agent": the rooms, an
// instance per room, and their directory.
func ExampleProgram() {
	services, err := chat.Program(func(section string, v any) error {
		if section == chat.Section {
			v.(*chat.Config).Role = "agent"
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range services {
		fmt.Println(s.Name(), s.Kind(), "on", s.Role())
	}
	// Output:
	// chat.rooms keyed on agent
	// chat.directory singleton on agent
}
