// Package demo is the seed's demo agent, built with the agent library: the
// commands login, echo, data, broadcast, whoami and quit of
// proto/PROTOCOL.md.
package demo

import (
	"errors"

	"golang.org/x/crypto/bcrypt"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/proto"
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
	Users Credentials `toml:"users"`
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

// UserKey is the session value holding the logged-in user's name.
const UserKey = "user"

// dummyHash makes a login for an unknown user cost as much as one for a
// known user, so timing does not reveal which names exist.
const dummyHash = "$2a$10$WWTdQ3d9HPLSycP9AxJeAeH7IBLyMp0OA5btnmiZUa36I3oHpCrO."

// New returns the demo agent checking logins against creds.
func New(creds Credentials) *agent.Agent {
	return agent.New().
		OnStart(func(s *agent.Session) error {
			return s.Send(agent.Reply{"status": "ok", "message": "Welcome to server"})
		}).
		Handle("login", login(creds)).
		Handle("echo", echo).
		Handle("data", data).
		Handle("broadcast", broadcast).
		Handle("whoami", whoami).
		Handle("quit", quit)
}

func login(creds Credentials) agent.HandlerFunc {
	return func(s *agent.Session, req proto.Request) (agent.Reply, error) {
		user, _ := proto.String(req.Data["username"])
		pass, _ := proto.String(req.Data["password"])
		hash, known := creds[user]
		if !known {
			hash = dummyHash
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
		return agent.Reply{"status": "ok", "message": "Login successful"}, nil
	}
}

func echo(s *agent.Session, req proto.Request) (agent.Reply, error) {
	text, _ := proto.String(req.Data["text"])
	return agent.Reply{"status": "ok", "echo": text}, nil
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
	return agent.Reply{"status": "ok", "session": s.ID(), "user": s.String(UserKey), "node": s.Node()}, nil
}

func quit(s *agent.Session, req proto.Request) (agent.Reply, error) {
	s.Close()
	return agent.Reply{"status": "ok", "message": "Goodbye"}, nil
}
