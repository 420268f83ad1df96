// Package watchdog manages client sessions, as Skynet's watchdog service
// does: for every connection a gate reports it creates a session, starts the
// session's agent in the listener's agent pool, tells the gate where to
// forward frames, and stops the agent when the client leaves.
//
// The watchdog monitors every agent. When one dies the gate is told at once
// (requests in flight get a retryable error), the supervisor restarts the
// agent, and the restarted agent gets the saved session back: the client
// stays connected and logged in. An agent that keeps crashing (more than
// MaxRestarts within RestartWindow) has its client kicked.
//
// Sessions live in a [Store] that belongs to the node, not to the watchdog
// process, so a crash of the watchdog loses nothing: the restarted watchdog
// monitors the agents again and re-sends every session's state.
package watchdog
