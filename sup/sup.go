package sup

import (
	"errors"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Restart types, as in OTP. In Ergo v2 the restart type applies to every
// child of a supervisor.
const (
	Permanent = gen.SupervisorStrategyRestartPermanent // always restarted
	Transient = gen.SupervisorStrategyRestartTransient // restarted unless it ended "normal" or "shutdown"
	Temporary = gen.SupervisorStrategyRestartTemporary // never restarted
)

// Strategy types.
const (
	OneForOne  = gen.SupervisorStrategyOneForOne
	OneForAll  = gen.SupervisorStrategyOneForAll
	RestForOne = gen.SupervisorStrategyRestForOne
)

// Default restart intensity: at most DefaultIntensity restarts within
// DefaultPeriod seconds, after which the supervisor gives up and dies.
const (
	DefaultIntensity = 10
	DefaultPeriod    = 5
)

// ErrNoChildren is returned by Spec.Validate for a static supervisor without children.
var ErrNoChildren = errors.New("sup: supervisor has no children")

// Child describes one statically started child.
type Child struct {
	Name     string              // registered name of the child (required)
	Behavior gen.ProcessBehavior // the child's code; it must not fail Init
	Options  gen.ProcessOptions
	Args     []etf.Term
}

// Spec describes a supervisor with a fixed list of children started in order.
type Spec struct {
	Name      string // registered name of the supervisor
	Type      string // OneForOne (default), OneForAll or RestForOne
	Restart   string // Permanent (default), Transient or Temporary
	Intensity uint16 // restarts allowed within Period; 0 means DefaultIntensity
	Period    uint16 // seconds; 0 means DefaultPeriod
	Children  []Child
}

// Validate reports a spec that Ergo would accept but run badly.
func (s Spec) Validate() error {
	if len(s.Children) == 0 {
		return fmt.Errorf("%w: %q", ErrNoChildren, s.Name)
	}
	for _, c := range s.Children {
		if c.Name == "" || c.Behavior == nil {
			return fmt.Errorf("sup: child of %q needs a name and a behavior", s.Name)
		}
	}
	return nil
}

func (s Spec) strategy() gen.SupervisorStrategy {
	st := gen.SupervisorStrategy{Type: s.Type, Restart: s.Restart, Intensity: s.Intensity, Period: s.Period}
	if st.Type == "" {
		st.Type = OneForOne
	}
	if st.Restart == "" {
		st.Restart = Permanent
	}
	if st.Intensity == 0 {
		st.Intensity = DefaultIntensity
	}
	if st.Period == 0 {
		st.Period = DefaultPeriod
	}
	return st
}

// New returns a supervisor behavior for spec. Spawn it with a node's or a
// process's Spawn; the name passed there should be spec.Name.
func New(spec Spec) gen.SupervisorBehavior {
	return &static{spec: spec}
}

type static struct {
	gen.Supervisor
	spec Spec
}

func (s *static) Init(args ...etf.Term) (gen.SupervisorSpec, error) {
	if err := s.spec.Validate(); err != nil {
		return gen.SupervisorSpec{}, err
	}
	children := make([]gen.SupervisorChildSpec, 0, len(s.spec.Children))
	for _, c := range s.spec.Children {
		children = append(children, gen.SupervisorChildSpec{
			Name: c.Name, Child: c.Behavior, Options: c.Options, Args: c.Args,
		})
	}
	return gen.SupervisorSpec{Name: s.spec.Name, Children: children, Strategy: s.spec.strategy()}, nil
}
