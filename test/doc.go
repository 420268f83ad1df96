// Package test holds skynode's whole-system tests: real nodes, real
// loopback sockets, real clients, faults injected into running processes.
// Nothing imports it.
package test
