// Package sup holds skynode's thin helpers over Ergo's gen.Supervisor: child
// specs with explicit restart strategies, worker pools for per-client agents,
// and the guards that Ergo v2's supervisor needs (sup/ERGO.md E8).
//
// It is the only package that builds gen.SupervisorSpec values. The helpers
// refuse the settings that make Ergo v2 misbehave silently: a zero restart
// intensity kills a supervisor at start-up, so Strategy fills in defaults;
// and a child whose Init fails makes a supervisor's Spawn hang, so children
// given to these helpers must never fail Init (skynode's gate, watchdog and
// agent do their fallible work after Init).
package sup
