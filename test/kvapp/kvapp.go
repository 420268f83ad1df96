// Package kvapp is an application written only against skynode's public
// API, as a user of the library would write one: a replicated key-value
// store. The store is a singleton service that saves its data after every
// change, so that when its node is lost the next node of its role runs it
// with the data; clients put, get and watch keys through their agents, and
// a topic pushes every change to the clients watching. Its test runs it on
// a cluster of real node processes (package kvnode is its binary) and
// kills the node holding the store.
package kvapp

import (
	"log/slog"

	"github.com/skynode/skynode/apps/agent"
	"github.com/skynode/skynode/nodes"
	"github.com/skynode/skynode/proto"
	"github.com/skynode/skynode/sup/service"
)

// Names the application uses.
const (
	ServiceName = "kv"         // the store's service name
	StoreRole   = "store"      // the role of the nodes that may run the store
	AgentKind   = "kv"         // the agent kind of its listeners
	ChangeTopic = "kv.changes" // every change is published here
	watchingKey = "watching"   // session value: the client watches changes
)

// Messages of the store.
type (
	// Put sets a key.
	Put struct {
		Key   string `msgpack:"key"`
		Value string `msgpack:"value"`
	}
	// Stored answers a Put with the store's version after it.
	Stored struct {
		Version int `msgpack:"version"`
	}
	// Get reads a key.
	Get struct {
		Key string `msgpack:"key"`
	}
	// Got answers a Get; Node is the node the store runs on.
	Got struct {
		Value string `msgpack:"value"`
		Found bool   `msgpack:"found"`
		Node  string `msgpack:"node"`
	}
	// Change is published for every Put.
	Change struct {
		Key     string `msgpack:"key"`
		Value   string `msgpack:"value"`
		Version int    `msgpack:"version"`
	}
)

// store is the service's state, and what it saves.
type store struct {
	Data    map[string]string `msgpack:"data"`
	Version int               `msgpack:"version"`
}

// Store returns the store service.
func Store() *service.Service[*store] {
	s := service.New[*store](ServiceName).On(StoreRole).
		OnStart(func(c *service.Context[*store]) error {
			st := &store{Data: map[string]string{}}
			if _, err := c.Restore(st); err != nil {
				return err
			}
			if st.Data == nil {
				st.Data = map[string]string{}
			}
			c.State = st
			c.Logger().Info("kv store started", "keys", len(st.Data), "version", st.Version)
			return nil
		})
	service.Handle(s, func(c *service.Context[*store], p Put) (Stored, error) {
		c.State.Data[p.Key] = p.Value
		c.State.Version++
		if err := c.Save(c.State); err != nil {
			c.Logger().Warn("kv store not replicated", "err", err)
		}
		if err := c.Publish(ChangeTopic, Change{Key: p.Key, Value: p.Value, Version: c.State.Version}); err != nil {
			c.Logger().Warn("kv change not published", "err", err)
		}
		return Stored{Version: c.State.Version}, nil
	})
	service.Handle(s, func(c *service.Context[*store], g Get) (Got, error) {
		v, ok := c.State.Data[g.Key]
		return Got{Value: v, Found: ok, Node: c.Node()}, nil
	})
	return s
}

// Agent returns the clients' agent: put {key, value}, get {key} and
// watch; a watching client gets {"event":"change","key","value","version"}
// for every change, also after its agent was restarted or moved.
func Agent() *agent.Agent {
	a := agent.New().
		OnRestore(func(s *agent.Session) error {
			if w, _ := agent.Value[bool](s, watchingKey); w {
				return s.Subscribe(ChangeTopic)
			}
			return nil
		}).
		Handle("put", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			key, _ := proto.String(req.Data["key"])
			value, _ := proto.String(req.Data["value"])
			id := req.ID
			return nil, agent.Call(s, agent.Service(ServiceName), Put{Key: key, Value: value},
				func(s *agent.Session, r Stored, err error) {
					if err != nil {
						_ = s.Send(agent.Reply{"status": "error", "message": err.Error(), "id": id})
						return
					}
					_ = s.Send(agent.Reply{"status": "ok", "version": r.Version, "id": id})
				})
		}).
		Handle("get", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			key, _ := proto.String(req.Data["key"])
			id := req.ID
			return nil, agent.Call(s, agent.Service(ServiceName), Get{Key: key},
				func(s *agent.Session, r Got, err error) {
					if err != nil {
						_ = s.Send(agent.Reply{"status": "error", "message": err.Error(), "id": id})
						return
					}
					_ = s.Send(agent.Reply{"status": "ok", "value": r.Value, "found": r.Found, "node": r.Node, "id": id})
				})
		}).
		Handle("watch", func(s *agent.Session, req proto.Request) (agent.Reply, error) {
			if err := s.Set(watchingKey, true); err != nil {
				return nil, err
			}
			return agent.Reply{"status": "ok"}, s.Subscribe(ChangeTopic)
		})
	return agent.Receive(a, func(s *agent.Session, c Change) error {
		return s.Send(agent.Reply{"event": "change", "key": c.Key, "value": c.Value, "version": c.Version})
	})
}

// Options returns the node options that run the application: give them to
// every node of the cluster.
func Options(log *slog.Logger) nodes.Options {
	return nodes.Options{
		Agents:   map[string]*agent.Agent{AgentKind: Agent()},
		Services: []service.Definition{Store()},
		Logger:   log,
	}
}
