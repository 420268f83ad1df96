// Package agent is skynode's per-client process and the library users write
// their own client logic with.
//
// Every client connection gets one agent: a gen.Server that receives the
// client's frames from the gate, runs the handler registered for each
// request's command, and sends the replies back through the gate. A user
// describes an agent with an [Agent]: command handlers ([Agent.Handle]),
// optional start and stop hooks, or a raw frame handler for protocols without
// commands. The gate and the watchdog need no change.
//
// Fault tolerance: agents run under a supervisor (see package sup). A handler
// that returns an error or panics is answered with "Internal server error"
// and the session goes on. An agent process that crashes anyway is restarted
// with the same session: values stored with [Session.Set] (the logged-in user
// of the demo agent, say) are saved by the watchdog after every change and
// handed to the restarted agent, so the client stays connected and logged in.
//
// Concurrency: handlers of one agent run one at a time, in frame order, in
// the agent's own process; a [Session] must not be used from other goroutines.
// Handlers of different clients run concurrently. The [Agent] value itself is
// shared by all processes and must not be changed after the node starts.
package agent
