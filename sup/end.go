package sup

import (
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
)

// Exit asks proc to end with reason, as gen.Process's Exit does, and
// Kill cancels it, as its Kill does; both are safe when proc ends at the
// same moment. Ergo's own can panic then (sup/ERGO.md E20): a process's
// cleanup clears the function they call, between their check that it is
// alive and the call, and Ergo's Exit of a process that does not trap
// exits meets that window by itself (the process ends on the request
// before Exit kills it). Exit returns lib.ErrProcessTerminated for a
// process that has ended or is ending.
func Exit(proc gen.Process, reason string) (err error) {
	defer func() {
		if recover() != nil {
			err = lib.ErrProcessTerminated
		}
	}()
	return proc.Exit(reason)
}

// Kill cancels proc (see Exit).
func Kill(proc gen.Process) {
	defer func() { _ = recover() }()
	proc.Kill()
}
