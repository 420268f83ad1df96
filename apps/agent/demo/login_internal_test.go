package demo

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The hash an unknown user's login is checked against costs what the
// configured hashes cost: the highest cost among them, bcrypt's default
// without any, whatever hashes that are not bcrypt's are there.
func TestDummyHashCost(t *testing.T) {
	t.Parallel()
	hash := func(cost int) string {
		t.Helper()
		h, err := bcrypt.GenerateFromPassword([]byte("secret"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	at4, at6 := hash(bcrypt.MinCost), hash(bcrypt.MinCost+2)
	for _, tc := range []struct {
		name  string
		creds Credentials
		want  int
	}{
		{"one cost", Credentials{"admin": at4}, bcrypt.MinCost},
		{"the highest of two", Credentials{"admin": at4, "bob": at6, "broken": "not a bcrypt hash"}, bcrypt.MinCost + 2},
		{"the default cost", Credentials{"admin": defaultDummyHash}, bcrypt.DefaultCost},
		{"no users", nil, bcrypt.DefaultCost},
		{"no bcrypt hash", Credentials{"broken": "not a bcrypt hash"}, bcrypt.DefaultCost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dummy := dummyHash(tc.creds)
			cost, err := bcrypt.Cost([]byte(dummy))
			if err != nil || cost != tc.want {
				t.Fatalf("dummy hash %q: cost %d, %v; want %d", dummy, cost, err, tc.want)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(dummy), []byte("secret")); err == nil {
				t.Fatal("the dummy hash matches a user's password")
			}
		})
	}
	if cost, err := bcrypt.Cost([]byte(defaultDummyHash)); err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("defaultDummyHash: cost %d, %v; want %d", cost, err, bcrypt.DefaultCost)
	}
}
