package bench

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit makes sure this process may hold need open files: it
// raises the soft RLIMIT_NOFILE up to the hard limit when the soft limit
// is lower than need. The error wraps ErrFileLimit when even the hard
// limit is too low, and says how to raise it.
func RaiseFileLimit(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("bench: getrlimit: %w", err)
	}
	want := uint64(need)
	if l.Cur >= want {
		return nil
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return fmt.Errorf("bench: setrlimit: %w", err)
		}
	}
	if l.Cur < want {
		return fmt.Errorf("%w: %d open files needed, the hard limit is %d; raise it (ulimit -Hn, or LimitNOFILE= under systemd) and note the server needs as many",
			ErrFileLimit, need, l.Max)
	}
	return nil
}
