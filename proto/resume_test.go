package proto

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func testClaims() ResumeClaims {
	return ResumeClaims{Session: 42, Node: "gate1@127.0.0.1", Listener: "agent", Gen: 3, Expires: time.Unix(2_000_000_000, 0)}
}

func TestResumeTokenRoundTrip(t *testing.T) {
	key := ResumeKey("a cookie")
	c := testClaims()
	tok, err := MintResumeToken(key, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) > MaxResumeToken || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q: want base64url without padding, at most %d characters", tok, MaxResumeToken)
	}
	got, err := VerifyResumeToken(key, tok, c.Expires.Add(-time.Second))
	if err != nil || got.Session != c.Session || got.Node != c.Node || got.Listener != c.Listener || got.Gen != c.Gen || !got.Expires.Equal(c.Expires) {
		t.Fatalf("verified %+v, %v; want %+v", got, err, c)
	}
	// The longest names fit, and the bound holds.
	c.Node, c.Listener = strings.Repeat("n", 255), strings.Repeat("l", 255)
	if tok, err := MintResumeToken(key, c); err != nil || len(tok) > MaxResumeToken {
		t.Fatalf("longest token: %d characters, %v", len(tok), err)
	}
	c.Node += "n"
	if _, err := MintResumeToken(key, c); err == nil {
		t.Fatal("a node name of 256 bytes was accepted")
	}
}

// Any change to a token, another cluster's key, or its expiry passing is
// refused, with the error that says which.
func TestResumeTokenRefused(t *testing.T) {
	key := ResumeKey("a cookie")
	c := testClaims()
	tok, err := MintResumeToken(key, c)
	if err != nil {
		t.Fatal(err)
	}
	now := c.Expires.Add(-time.Minute)
	for i := range tok {
		for _, r := range []byte("AQw_-") {
			if tok[i] == r {
				continue
			}
			bad := tok[:i] + string(r) + tok[i+1:]
			if _, err := VerifyResumeToken(key, bad, now); !errors.Is(err, ErrResumeToken) {
				// A changed last character may leave the decoded bytes
				// unchanged (its low bits are padding): then it must
				// verify as the same token.
				if got, err2 := VerifyResumeToken(key, bad, now); err2 != nil || got != mustVerify(t, key, tok, now) {
					t.Fatalf("character %d changed to %q: %v", i, r, err)
				}
			}
		}
	}
	for _, bad := range []string{"", "!!!", tok[:len(tok)-1], tok + "A", tok[:10], strings.Repeat("A", MaxResumeToken+1)} {
		if _, err := VerifyResumeToken(key, bad, now); !errors.Is(err, ErrResumeToken) {
			t.Errorf("%q: %v, want ErrResumeToken", bad, err)
		}
	}
	if _, err := VerifyResumeToken(ResumeKey("another cookie"), tok, now); !errors.Is(err, ErrResumeToken) {
		t.Errorf("another cluster's key: %v", err)
	}
	if _, err := VerifyResumeToken(key, tok, c.Expires); !errors.Is(err, ErrResumeExpired) {
		t.Errorf("at its expiry: %v, want ErrResumeExpired", err)
	}
}

func mustVerify(t *testing.T, key []byte, tok string, now time.Time) ResumeClaims {
	t.Helper()
	c, err := VerifyResumeToken(key, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Whatever the input, VerifyResumeToken returns an error or claims whose
// token, minted again, is the same bytes.
func FuzzVerifyResumeToken(f *testing.F) {
	key := ResumeKey("fuzz")
	tok, err := MintResumeToken(key, testClaims())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("")
	f.Add("AQAAAAAAAAAqAAAAAwAAAAB3NZQADw")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := VerifyResumeToken(key, s, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, ErrResumeToken) && !errors.Is(err, ErrResumeExpired) {
				t.Fatalf("error %v wraps neither", err)
			}
			return
		}
		again, err := MintResumeToken(key, c)
		if err != nil {
			t.Fatal(err)
		}
		if b1, b2 := mustDecode(t, s), mustDecode(t, again); string(b1) != string(b2) {
			t.Fatalf("%q verified as %+v, which mints %q", s, c, again)
		}
	})
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
