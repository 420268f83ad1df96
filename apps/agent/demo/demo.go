// Package demo is the seed's demo agent, built with the agent library: the
// commands login, echo, data, broadcast, whoami and quit of
// proto/PROTOCOL.md.
package demo

import (
	"errors"
	"net"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/service"
)

// Credentials maps user names to bcrypt password hashes (as produced by
// `node hash-password`). Plain passwords are never stored.
type Credentials map[string]string

// Section is the name of the demo agent's table in a cluster description:
// [auth], with its users (see Config).
const Section = "auth"

// Config is the demo agent's section of a cluster description:
//
//	[auth.users]
//	admin = "$2a$10$..."   # bcrypt hash, from `node hash-password`
type Config struct {
	Users    Credentials `toml:"users"`
	Throttle Throttle    `toml:"throttle"` // [auth.throttle]
}

// FromSection builds the demo agent from its section of a cluster
// description, read with decode (nodes.Config.DecodeSection): the way a
// program registers its own agents from its own settings.
func FromSection(decode func(section string, v any) error) (*agent.Agent, error) {
	var c Config
	if err := decode(Section, &c); err != nil {
		return nil, err
	}
	return New(c.Users), nil
}

// Program builds what a node needs to serve the demo agent from its
// section of a cluster description: the agent, whose logins the login
// throttle paces (NewThrottled), and the throttle's service, to register
// with nodes.Options.Services. `node run` uses it.
func Program(decode func(section string, v any) error) (*agent.Agent, []service.Definition, error) {
	var c Config
	if err := decode(Section, &c); err != nil {
		return nil, nil, err
	}
	return NewThrottled(c.Users), []service.Definition{LoginThrottle(c.Throttle)}, nil
}

// UserKey is the session value holding the logged-in user's name.
const UserKey = "user"

// defaultDummyHash is a bcrypt hash at bcrypt.DefaultCost (10), the cost
// of `node hash-password`'s hashes: dummyHash's answer for those.
const defaultDummyHash = "$2a$10$WWTdQ3d9HPLSycP9AxJeAeH7IBLyMp0OA5btnmiZUa36I3oHpCrO."

// dummyHash returns the hash a login for an unknown user is checked
// against, so that it costs as much as one for a known user and timing
// does not reveal which names exist: a hash at the highest cost among
// creds' hashes (bcrypt.DefaultCost without any), made once, when the
// agent is built (a hash that is not bcrypt's counts for nothing).
func dummyHash(creds Credentials) string {
	cost := 0
	for _, h := range creds {
		if c, err := bcrypt.Cost([]byte(h)); err == nil {
			cost = max(cost, c)
		}
	}
	if cost == 0 || cost == bcrypt.DefaultCost {
		return defaultDummyHash
	}
	h, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), cost)
	if err != nil {
		return defaultDummyHash // unreachable: the cost came from a valid hash
	}
	return string(h)
}

// New returns the demo agent checking logins against creds, with no
// throttle.
func New(creds Credentials) *agent.Agent { return build(login(creds)) }

// NewThrottled returns the demo agent checking logins against creds, each
// attempt first cleared by the login throttle (LoginThrottle, which the
// node must run): an account or address that failed too often in a row
// is answered "Too many login attempts; try again later" with the wait
// in retry_after_ms, and its attempt counts as a failed login (the session
// is logged out). Where the throttle does not answer within a second (it
// is restarting) the login is tried unthrottled rather than refused.
func NewThrottled(creds Credentials) *agent.Agent { return build(throttled(login(creds))) }

// MsgThrottled answers a login the throttle holds back.
const MsgThrottled = "Too many login attempts; try again later"

func build(login agent.HandlerFunc) *agent.Agent {
	return agent.New().
		OnStart(func(s *agent.Session) error {
			return s.Send(agent.Reply{"status": "ok", "message": "Welcome to server"})
		}).
		Handle("login", login).
		Handle("echo", echo).
		Handle("data", data).
		Handle("broadcast", broadcast).
		Handle("whoami", whoami).
		Handle("quit", quit)
}

func login(creds Credentials) agent.HandlerFunc {
	dummy := dummyHash(creds)
	return func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		user, _ := proto.String(req.Data["username"])
		pass, _ := proto.String(req.Data["password"])
		hash, known := creds[user]
		if !known {
			hash = dummy
		}
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass))
		if err != nil && !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			s.Delete(UserKey)
			return nil, err // a malformed hash in the configuration
		}
		if !known || err != nil {
			s.Delete(UserKey) // a failed login logs the session out (proto/PROTOCOL.md)
			return agent.Reply{"status": "error", "message": "Invalid credentials"}, nil
		}
		s.Set(UserKey, user)
		s.AllowResume() // the client is given a resume token after this answer
		return agent.Reply{"status": "ok", "message": "Login successful"}, nil
	}
}

func echo(s *agent.Session, req proto.Request) (agent.Reply, error) {
	text, _ := proto.String(req.Data["text"])
	return agent.Reply{"status": "ok", "echo": text}, nil
}

// throttled wraps a login handler with the login throttle: it asks the
// throttle, tries the login from the answer's callback, answers the client
// there with the request's id, and tells the throttle how it went.
func throttled(try agent.HandlerFunc) agent.HandlerFunc {
	// A throttle that does not answer within a second (restarting)
	// delays a login that long at most.
	ref := agent.Service(ThrottleService).WithTimeout(time.Second).Ordered()
	return func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		user, _ := proto.String(req.Data["username"])
		addr := s.Remote()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		err := agent.Call(s, ref, loginCheck{User: user, Addr: addr}, func(s *agent.Session, w loginWait, err error) {
			var reply agent.Reply
			if err == nil && w.WaitMs > 0 {
				s.Delete(UserKey) // a refused attempt is a failed login
				reply = agent.Reply{"status": "error", "message": MsgThrottled, "retry_after_ms": w.WaitMs}
			} else {
				var herr error
				if reply, herr = try(s, req); herr != nil {
					reply = agent.Reply{"status": "error", "message": "Internal server error"}
				}
				_ = s.Cast(agent.Service(ThrottleService), loginResult{User: user, Addr: addr, OK: reply["status"] == "ok"})
			}
			if req.HasID {
				reply["id"] = req.ID
			}
			_ = s.Send(reply)
		})
		if err != nil {
			return try(s, req) // the throttle cannot be asked: not a reason to refuse
		}
		return nil, nil
	}
}

// data is the Skynet tutorial's POST /api/data: it takes any data and
// says what it received.
func data(s *agent.Session, req proto.Request) (agent.Reply, error) {
	return agent.Reply{"status": "ok", "received": req.Data, "keys": len(req.Data)}, nil
}

// MaxBroadcastText bounds the text of a broadcast, in bytes.
const MaxBroadcastText = 1024

// broadcast sends a logged-in user's text to every client of the gate's
// listener (Skynet's websocket broadcast).
func broadcast(s *agent.Session, req proto.Request) (agent.Reply, error) {
	user := s.String(UserKey)
	if user == "" {
		return agent.Reply{"status": "error", "message": "Login required"}, nil
	}
	text, _ := proto.String(req.Data["text"])
	if len(text) > MaxBroadcastText {
		return agent.Reply{"status": "error", "message": "Text too long"}, nil
	}
	if err := s.Broadcast(agent.Reply{"type": "broadcast", "from": user, "text": text}); err != nil {
		return nil, err
	}
	return agent.Reply{"status": "ok", "message": "Broadcast sent"}, nil
}

func whoami(s *agent.Session, req proto.Request) (agent.Reply, error) {
	return agent.Reply{"status": "ok", "session": s.ID(), "user": s.String(UserKey), "node": s.Node(), "agent": s.Address().Agent.String()}, nil
}

func quit(s *agent.Session, req proto.Request) (agent.Reply, error) {
	s.Close()
	return agent.Reply{"status": "ok", "message": "Goodbye"}, nil
}
