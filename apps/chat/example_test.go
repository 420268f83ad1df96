package chat_test

import (
	"fmt"

	"github.com/skynode/skynode/apps/chat"
)

// The room service as a program configures it from its cluster.toml, here
// a [chat] table with role = "agent".
func ExampleProgram() {
	rooms, err := chat.Program(func(section string, v any) error {
		if section == chat.Section {
			v.(*chat.Config).Role = "agent"
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rooms.Name(), rooms.Kind(), "on", rooms.Role())
	// Output: chat.rooms sharded on agent
}
