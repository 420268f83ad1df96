package bench

import "errors"

// ErrFileLimit is wrapped by errors about a too low open-file limit.
var ErrFileLimit = errors.New("bench: open-file limit too low")
