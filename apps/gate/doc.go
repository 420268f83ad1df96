// Package gate bridges client sockets to agent processes, as Skynet's gate
// service does.
//
// A [Listener] owns one listening socket (package net/socket) and its
// connections; it is created, and its port bound, before the supervision
// tree starts, so a busy port is a clear start-up error. Its gate process
// (see [Listener.Behavior]) is a gen.Server under a supervisor: it tells the
// watchdog about each connection ("connect"/"disconnect"), learns from it
// which agent serves a session ("forward"), writes the agents' output to the
// sockets and closes connections on request ("kick"). The connections live
// in the Listener, not in the process, so a crash and restart of the gate
// process leaves clients connected; requests in flight at that moment are
// answered with a retryable error.
//
// Each connection's read goroutine sends frames straight to the session's
// agent (never through a Call: a Call to a crashing process in Ergo v2 waits
// for its whole timeout). At most Window frames of a client are in flight;
// the read goroutine waits for the agent's acknowledgements beyond that, so
// a fast client is slowed by TCP back-pressure instead of overflowing the
// agent's mailbox. Frames in flight to an agent that dies are answered with
// {"status":"error","message":"agent unavailable, retry","id":...} (raw
// listeners have no such answer and the frames are lost).
//
// Agents are addressed by pid, on whatever node they run, and the watchdog
// re-points the gate with a Forward after every restart or move. They are
// deliberately not given registered names: Ergo v2 scans every registered
// name of the node, under the lock all name lookups take, each time any
// process ends, so one name per client makes every disconnect O(clients)
// (sup's BenchmarkProcessExitWithNames: a spawn and exit take about 20 µs
// with no names, 50–200 µs with 10,000 and 300–650 µs with 50,000 named
// processes on the project's 2-core machine). A Forward costs nothing extra:
// a restarted agent needs the watchdog's session state before it serves
// anyway.
//
// Frames and output longer than proto.MaxChunk cross in parts, below the
// size at which Ergo v2 corrupts a busy node link; a frame takes one window
// token per part. Frames for agents on other nodes go through Options.Remote
// (package nodes/outbox), so a read goroutine never blocks on a dead peer.
//
// A session its agent made resumable (agent.Session.AllowResume) outlives
// a connection its client lost, for Options.ResumeWindow: the gate keeps
// its routing state and the messages its client may have missed, and a
// new connection whose first request is resume, with the session's token,
// takes it over
// (resume.go; proto/PROTOCOL.md, "Resuming a session").
package gate
